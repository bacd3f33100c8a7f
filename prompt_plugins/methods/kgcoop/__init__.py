"""KgCoOp (knowledge-guided context optimisation, CVPR 2023): ``wrap(model, classnames, method="kgcoop")``.

CoOp's ``SoftPrompt`` plus the knowledge-guided term as a drop-in loss: ``KnowledgeGuidedLoss`` (W·(1 − mean cos)
to the frozen CLIP's features of the data set's hand-crafted CoOp prompt; ``loss.py``, ``templates.py``).
Files: ``config.py`` (typed options), ``model.py`` (``wrap``), ``importer.py`` (official ``prompt_learner`` files).
"""
from ...model import PromptedOptions
from ...registry import register_method
from ..coop.model import load_prompted
from . import importer  # noqa: F401  (registers the "kgcoop" importer)
from .config import KgCoOpLossConfig, KgCoOpPromptConfig, method_configs
from .loss import KnowledgeGuidedLoss
from .model import build_kgcoop
from .templates import COOP_TEMPLATES, hand_crafted_template

register_method("kgcoop", build_kgcoop, load_prompted,
                "KgCoOp: CoOp soft prompts; its knowledge-guided loss is a separate module",
                options=(PromptedOptions, KgCoOpPromptConfig), load_options=(PromptedOptions,))

__all__ = ["KnowledgeGuidedLoss", "KgCoOpLossConfig", "KgCoOpPromptConfig", "method_configs", "COOP_TEMPLATES",
           "hand_crafted_template", "build_kgcoop"]
