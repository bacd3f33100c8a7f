"""prompt-plugins: modern prompt tuning for existing CLIP models, attached through hooks.

    import prompt_plugins as pp
    prompted = pp.wrap(model, classnames, method="coop", ctx_init="a photo of a")
    logits = prompted(images)                      # (B, 3, H, W) or (B, T, 3, H, W) -> (B, C)
    pp.save_pretrained(prompted, "runs/coop")
    prompted = pp.from_pretrained(model, "runs/coop", classnames=new_classnames)
"""
from ._version import __version__
from .backends import resolve
from .checkpoint import save_pretrained
from .errors import (
    BackendMismatchWarning,
    CheckpointError,
    ClassNameError,
    ConfigError,
    PromptPluginsError,
    PromptTooLongError,
    ShapeError,
    UnsafeCheckpointError,
    UnsupportedModelError,
)
from .losses import symmetric_info_nce
from .methods.dpc import DualPromptWrapper, HardNegativeOptimizer
from .methods.ga2 import AttributeAnchorLoss, HardSoftCoupler
from .methods.kgcoop import KnowledgeGuidedLoss
from .methods.promptsrc import GaussianPromptAggregation, PromptSRCLoss
from .methods.promptkd import DistillationLoss, PromptKDDistiller
from .model import PromptedCLIP
from .prompts import PromptModule, Prompts, SoftPrompt
from .recipes import RECIPES, Recipe, get_recipe
from .registry import METHODS, from_pretrained, register_method, wrap

__all__ = [
    "__version__", "wrap", "from_pretrained", "save_pretrained", "register_method", "METHODS", "resolve",
    "PromptedCLIP", "PromptModule", "Prompts", "SoftPrompt",
    "PromptPluginsError", "UnsupportedModelError", "ClassNameError", "PromptTooLongError", "ShapeError",
    "ConfigError", "CheckpointError", "UnsafeCheckpointError", "BackendMismatchWarning",
    "DualPromptWrapper", "HardNegativeOptimizer", "symmetric_info_nce", "AttributeAnchorLoss", "HardSoftCoupler",
    "PromptSRCLoss", "GaussianPromptAggregation", "KnowledgeGuidedLoss",
    "DistillationLoss", "PromptKDDistiller",
    "Recipe", "RECIPES", "get_recipe",
]
