"""PromptSRC (self-regulating prompts, ICCV 2023): ``wrap(model, classnames, method="promptsrc")``.

IVLP deep prompts (the shared ``SoftPrompt``) plus PromptSRC's self-regulation as pieces any training loop calls:
``PromptSRCLoss`` (CE + L1 to the frozen text / image features + KL to the frozen logits; ``losses.py``),
``GaussianPromptAggregation`` (the prompts' Gaussian-weighted average over epochs; ``gpa.py``) and the frozen text
target of the 60 ImageNet templates (``templates.py``, ``text_targets.FrozenTextTargets``).
Files: ``config.py`` (typed options), ``model.py`` (``wrap``), ``importer.py`` (official ``VLPromptLearner`` files).
"""
from ...model import PromptedOptions
from ...registry import register_method
from ..coop.model import load_prompted
from . import importer  # noqa: F401  (registers the "promptsrc" importer)
from .config import GPAConfig, PromptSRCPromptConfig, SelfRegulationConfig, method_configs
from .gpa import GaussianPromptAggregation, gaussian_weights
from .losses import PromptSRCLoss, feature_l1, logit_kl
from .model import build_promptsrc
from .templates import IMAGENET_TEMPLATES

register_method("promptsrc", build_promptsrc, load_prompted,
                "PromptSRC: IVLP deep prompts; its self-regulating losses and GPA are separate objects",
                options=(PromptedOptions, PromptSRCPromptConfig), load_options=(PromptedOptions,))

__all__ = ["PromptSRCLoss", "GaussianPromptAggregation", "gaussian_weights", "feature_l1", "logit_kl",
           "PromptSRCPromptConfig", "SelfRegulationConfig", "GPAConfig", "method_configs", "IMAGENET_TEMPLATES",
           "build_promptsrc"]
