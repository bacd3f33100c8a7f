"""GA2-CLIP (generic attribute anchors, video): IVLP deep prompts + a frozen hard prompt coupled to soft tokens,
and the attribute-anchor loss.

Files: ``config.py`` (options, the coupler's config), ``hard_prompt.py`` (reading H), ``coupler.py``
(``HardSoftCoupler``), ``model.py`` (``wrap(method="ga2")``), ``anchor_loss.py`` (``AttributeAnchorLoss``),
``importer.py`` (GA2-CLIP checkpoints).
"""
from ...model import PromptedOptions
from ...registry import register_method
from ..coop.model import load_prompted
from . import importer  # noqa: F401  (registers the "ga2" importer)
from .anchor_loss import DEFAULT_ATTRIBUTE_BANK, AnchorStream, AttributeAnchorLoss
from .config import GA2_DEPTH, CouplerConfig, GA2Options
from .coupler import HardSoftCoupler
from .hard_prompt import load_hard_prompt
from .model import build_ga2

register_method("ga2", build_ga2, load_prompted, "GA2-CLIP: IVLP deep prompts + frozen hard prompt coupled to soft tokens",
                options=(PromptedOptions, GA2Options), load_options=(PromptedOptions,))

__all__ = ["HardSoftCoupler", "AttributeAnchorLoss", "AnchorStream", "DEFAULT_ATTRIBUTE_BANK", "GA2Options",
           "CouplerConfig", "GA2_DEPTH", "load_hard_prompt", "build_ga2"]
