"""PromptKD (unsupervised prompt distillation, CVPR 2024): a student with visual prompts and a projector into its
teacher's feature space, scored with the teacher's stored text features; the distillation loss over logits.

Files: ``config.py`` (options, the distillation settings, the saved section), ``student.py`` (``StudentPrompt``,
the ``Projector``), ``teacher.py`` (teacher text features, once per class list), ``loss.py``
(``DistillationLoss``, ``PromptKDDistiller``), ``model.py`` (``wrap`` / ``from_pretrained``), ``importer.py``
(released student files), ``dpc_import.py`` (released PromptKD+DPC runs).
"""
from ...model import PromptedOptions
from ...registry import register_method
from ..dpc.config import DPCLoadOptions
from . import dpc_import, importer  # noqa: F401  (register the "promptkd" and "promptkd_dpc" importers)
from .config import DistillOptions, StudentOptions, StudentSection, TeacherOptions
from .loss import DistillationLoss, PromptKDDistiller
from .model import build_promptkd, load_promptkd
from .student import Projector, StudentPrompt
from .teacher import teacher_text_features

register_method("promptkd", build_promptkd, load_promptkd,
                "PromptKD student: visual prompts + projector, scored with its teacher's stored text features",
                options=(PromptedOptions, StudentOptions, TeacherOptions),
                load_options=(PromptedOptions, TeacherOptions, DPCLoadOptions))

__all__ = ["StudentPrompt", "Projector", "DistillationLoss", "PromptKDDistiller", "DistillOptions",
           "StudentOptions", "StudentSection", "TeacherOptions", "teacher_text_features"]
