"""MaPLe (multi-modal prompt learning): ``wrap(model, classnames, method="maple", ...)``: deep text prompts whose
visual prompts are produced by per-layer coupling functions.

Files: ``config.py`` (``MaPLeConfig``, ``MaPLeOptions``), ``prompt.py`` (``MaPLePrompt``), ``model.py`` (build; loads
go through CoOp's generic ``load_prompted``), ``importer.py`` (released ``MultiModalPromptLearner`` files).
"""
from ...model import PromptedOptions
from ...registry import register_method
from ..coop.model import load_prompted
from . import importer  # noqa: F401  (registers the "maple" importer)
from .config import COUPLER_INITS, MAPLE_DEPTH, MaPLeConfig, MaPLeOptions
from .model import build_maple
from .prompt import MaPLePrompt

register_method("maple", build_maple, load_prompted, "MaPLe: deep text prompts coupled to visual prompts",
                options=(PromptedOptions, MaPLeOptions), load_options=(PromptedOptions,))

__all__ = ["MaPLePrompt", "MaPLeConfig", "MaPLeOptions", "MAPLE_DEPTH", "COUPLER_INITS", "build_maple"]
