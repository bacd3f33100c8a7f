"""``wrap(model, classnames, method="promptkd", teacher=...)`` and the loader of saved PromptKD students."""
from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor

from ...checkpoint import AdapterConfig
from ...errors import ConfigError, ShapeError
from ...model import PromptedCLIP, PromptedOptions
from ...registry import Target
from ...tokenization import check_classnames
from ..coop.model import load_prompted, prompted_clip
from .config import StudentOptions, StudentSection, TeacherOptions
from .student import StudentPrompt
from .teacher import resolve_teacher, split_teacher_options


def build_promptkd(target: Target, classnames: Sequence[str], options: PromptedOptions, student: StudentOptions,
                   teacher: TeacherOptions) -> PromptedCLIP:
    """A PromptKD student on the target's CLIP: visual prompts + projector (``StudentOptions``), scored with the
    teacher's text features for ``classnames``, computed here once (``TeacherOptions``)."""
    names = check_classnames(classnames)
    features, feature_names = resolve_teacher(teacher, names)
    module = StudentPrompt.build(target.backend, student, features, feature_names)
    return prompted_clip(target, names, module, "promptkd", options)


def student_section(config: AdapterConfig) -> StudentSection:
    data = dict(config.prompt or {})
    if data.pop("type", "promptkd") != "promptkd":
        raise ConfigError(f"adapter_config.json of a 'promptkd' adapter has a {config.prompt.get('type')!r} prompt")
    return StudentSection.from_dict(data, where="adapter_config.json 'prompt'")


def with_teacher(config: AdapterConfig, state: dict[str, Tensor], names: list[str], teacher: TeacherOptions,
                 prefix: str = "prompt.") -> tuple[AdapterConfig, dict[str, Tensor]]:
    """The config and tensors of a student adapter whose teacher features are those of ``teacher`` (computed once
    for ``names``), replacing any stored ones."""
    section = student_section(config)
    features, feature_names = resolve_teacher(teacher, names)
    if features.shape[-1] != section.teacher_width:
        raise ShapeError(f"the teacher's text features are {features.shape[-1]}-d but this student's projector maps "
                         f"into a {section.teacher_width}-d space: it was distilled from another teacher (another "
                         "CLIP width); pass the teacher it was trained with")
    section = section.replace(teacher_classnames=list(feature_names))
    state = {**state, f"{prefix}teacher_features": features}
    return config.replace(prompt=StudentPrompt.section(section)), state


def load_promptkd(target: Target, config: AdapterConfig, state: dict[str, Tensor], classnames: Sequence[str] | None,
                  options: dict[str, Any]) -> PromptedCLIP:
    """Rebuild a saved student, in eval mode (its BatchNorm then uses the running statistics; ``.train()`` to train
    on). ``teacher=`` / ``teacher_features=`` (re)compute its teacher features, needed for an adapter converted from
    a released student file (which holds none) or for classes it stores none for."""
    if config.dpc is not None:  # a converted PromptKD+DPC run, completed with its teacher
        from .dpc_import import load_promptkd_dpc

        return load_promptkd_dpc(target, config, state, classnames, options)
    if options.get("base_classes") is not None:
        raise ConfigError("base_classes= is for an imported PromptKD+DPC run; this is a PromptKD student")
    options = {k: v for k, v in options.items() if k != "base_classes"}
    teacher, options = split_teacher_options(options)
    names = list(classnames) if classnames is not None else config.classnames
    if not names:
        raise ConfigError("no class names: pass classnames=[...] (the checkpoint stores none)")
    if teacher.given:
        config, state = with_teacher(config, state, names, teacher)
    elif student_section(config).teacher_classnames is None:
        raise ConfigError(f"{(config.imported_from or {}).get('source', 'this PromptKD adapter')} stores no teacher text "
                          "features (a released student file holds only the student): pass teacher=<the teacher "
                          "PromptedCLIP> or teacher_features=<(K, E) tensor> with teacher_classnames=[...] to "
                          "from_pretrained; pp.save_pretrained then keeps them with the adapter")
    return load_prompted(target, config, state, names, options).eval()  # BatchNorm: running statistics
