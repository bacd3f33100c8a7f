"""Exception types. Every error names the problem and, where there is one, the fix.

Each class also derives from the built-in exception a caller would naturally catch
(``ValueError`` for bad values, ``TypeError`` for unsupported objects), so existing
``except ValueError`` code keeps working.
"""
from __future__ import annotations

__all__ = [
    "PromptPluginsError",
    "UnsupportedModelError",
    "ClassNameError",
    "PromptTooLongError",
    "ShapeError",
    "ConfigError",
    "CheckpointError",
    "UnsafeCheckpointError",
    "BackendMismatchWarning",
    "TowerMismatchWarning",
    "check_finite",
]


class PromptPluginsError(Exception):
    """Base class of every error raised by prompt-plugins."""


class UnsupportedModelError(PromptPluginsError, TypeError):
    """The object is not a CLIP model (or part of one) that a backend can drive."""


class ClassNameError(PromptPluginsError, ValueError):
    """Empty, duplicate or unknown class names."""


class PromptTooLongError(ClassNameError):
    """A class prompt does not fit in the text tower's context length."""


class ShapeError(PromptPluginsError, ValueError):
    """A tensor has the wrong shape, dtype or values (NaN/inf)."""


def check_finite(name: str, tensor, hint: str = "") -> None:
    """Raise ``ShapeError`` if ``tensor`` holds NaN or inf (a loss would silently propagate them)."""
    import torch

    if tensor is not None and tensor.is_floating_point() and not bool(torch.isfinite(tensor.detach()).all()):
        bad = int((~torch.isfinite(tensor.detach())).sum())
        raise ShapeError(f"{name} contains {bad} NaN/inf values{': ' + hint if hint else ''}; "
                         "check the inputs and the learning rate (and use fp32 prompts under fp16)")


class ConfigError(PromptPluginsError, ValueError):
    """An option or an adapter config value is invalid."""


class CheckpointError(PromptPluginsError, ValueError):
    """A checkpoint is missing, corrupt, or does not fit the model."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle checkpoint needs arbitrary code to load and the caller did not opt in."""


class BackendMismatchWarning(UserWarning):
    """An adapter saved on one CLIP library (``backbone.backend``) is loaded into a model of another whose
    shapes match: the weights may be unrelated. Silence it with ``from_pretrained(..., allow_other_backend=True)``."""


class TowerMismatchWarning(UserWarning):
    """An imported adapter's prompts were trained on tower weights that differ from the model it is loaded into."""
