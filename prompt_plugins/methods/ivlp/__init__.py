"""IVLP (independent vision-language prompting): ``wrap(model, classnames, method="ivlp", ...)``.

Files: ``model.py`` (``IVLPOptions``, build; the prompt module is the shared ``prompts/soft.py`` ``SoftPrompt``),
``importer.py`` (the MaPLe repository's IVLP files), ``released.py`` (what the MaPLe and IVLP importers of released
full-model Dassl files share).
"""
from ...model import PromptedOptions
from ...registry import register_method
from ..coop.model import load_prompted
from . import importer  # noqa: F401  (registers the "ivlp" importer)
from .model import IVLP_DEPTH, IVLPOptions, build_ivlp
from .released import ReleasedImportOptions, released_format

register_method("ivlp", build_ivlp, load_prompted, "IVLP: independent deep prompts in both towers",
                options=(PromptedOptions, IVLPOptions), load_options=(PromptedOptions,))

__all__ = ["IVLPOptions", "IVLP_DEPTH", "build_ivlp", "ReleasedImportOptions", "released_format"]
