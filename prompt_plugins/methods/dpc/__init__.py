"""DPC (Dual-Prompt Collaboration, CVPR 2025): a frozen backbone prompt P plus a trainable parallel prompt for
base classes, and the dynamic hard-negative objective.

Files: ``config.py`` (options, the saved section), ``dual.py`` (P, the parallel prompt, the modes),
``wrapper.py`` (``DualPromptWrapper``: what both target kinds share), ``prompted.py`` (on a ``PromptedCLIP``),
``foreign.py`` (on a CoOp-style model), ``sampler.py`` / ``dataset_index.py`` / ``objective.py``
(``HardNegativeOptimizer``), ``model.py`` (``wrap``/``from_pretrained``), ``importer.py`` (CoOp+DPC files).
"""
from ...model import PromptedOptions
from ...prompts import SoftPromptConfig
from ...registry import register_method
from . import importer  # noqa: F401  (registers the "dpc" importer)
from .config import MODES, DPCLoadOptions, DPCOptions, DPCSection, DPCStage2Options
from .dataset_index import build_class_index
from .dual import DualPrompt
from .foreign import ForeignDualWrapper, foreign_prompt_names
from .model import build_dpc, dpc_option_types, load_dpc
from .objective import HardNegativeBatch, HardNegativeOptimizer
from .prompted import PromptedDualWrapper
from .route_view import RouteView
from .wrapper import DualPromptWrapper

register_method("dpc", build_dpc, load_dpc, "DPC: frozen backbone prompt + parallel prompt for base classes",
                options=(DPCOptions, PromptedOptions, SoftPromptConfig), load_options=(PromptedOptions, DPCLoadOptions),
                options_for=dpc_option_types)

__all__ = ["DualPromptWrapper", "PromptedDualWrapper", "ForeignDualWrapper", "DualPrompt", "HardNegativeOptimizer",
           "HardNegativeBatch", "build_class_index", "foreign_prompt_names", "DPCOptions", "DPCSection", "DPCStage2Options", "RouteView", "MODES"]
