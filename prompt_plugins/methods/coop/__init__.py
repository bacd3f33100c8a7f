"""CoOp (and IVLP/MaPLe-style deep prompts): ``wrap(model, classnames, method="coop", ...)``.

Files: ``model.py`` (build / load), ``importer.py`` (official CoOp checkpoints), ``vificlip.py`` (ViFi-CLIP
checkpoints). The prompt module itself, ``SoftPrompt``, is shared with DPC and GA2: ``prompts/soft.py``.
"""
from ...model import PromptedOptions
from ...prompts import SoftPromptConfig
from ...registry import register_method
from . import importer, vificlip  # noqa: F401  (register the "coop" and "vificlip" importers)
from .model import build_coop, load_prompted, prompted_clip

register_method("coop", build_coop, load_prompted, "CoOp soft prompts (+ deep IVLP/MaPLe-style prompts)",
                options=(PromptedOptions, SoftPromptConfig), load_options=(PromptedOptions,))

__all__ = ["build_coop", "load_prompted", "prompted_clip"]
