"""Typed configs: dataclasses that check their own field types and values and round-trip through JSON.

Every option schema of the package is one of these (``SoftPromptConfig``, ``DPCConfig``, ...): ``wrap``
splits its keyword options by field name, saved adapters store ``to_dict()``, and loading goes through
``from_dict``, so a wrong key or a wrong type (``"n_ctx": "4"``) is reported once, naming the field, the
value, the type expected and where it came from.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, Literal, Mapping, TypeVar, Union

from .errors import ConfigError

C = TypeVar("C", bound="Config")


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return f"a {origin.__name__} of {_describe(typing.get_args(tp)[0])}"
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        item = typing.get_args(tp)[0]
        return isinstance(value, (list, tuple)) and all(_matches(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _quoted_hint(value: Any, tp: Any) -> str:
    """For a string that holds a valid JSON value of the right type (``"4"``, ``"false"``): say to unquote it."""
    if not isinstance(value, str):
        return ""
    try:
        parsed = json.loads(value)
    except ValueError:
        return ""
    return f" (write {json.dumps(parsed)} without quotes)" if _matches(parsed, tp) else ""


@dataclasses.dataclass
class Config:
    """Base of the package's configs. Subclasses are dataclasses; ``check()`` adds value rules."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _matches(value, hints[f.name]):
                raise ConfigError(f"{f.name}={value!r} ({type(value).__name__}) is not valid: "
                                  f"expected {_describe(hints[f.name])}{_quoted_hint(value, hints[f.name])}")
            if hints[f.name] is float and isinstance(value, int):
                object.__setattr__(self, f.name, float(value))
        self.check()

    def check(self) -> None:
        """Value rules beyond the types (ranges, combinations); raise ``ConfigError``."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any], *, where: str = "config") -> C:
        """Build from a mapping (a saved config); errors name ``where`` the values came from."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a JSON object for {cls.__name__}, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(cls.field_names())}")
        missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in data
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:  # dataclass __init__ would raise a bare TypeError
            raise ConfigError(f"{where}: missing field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                              f"({cls.__name__} needs it); the file was edited or written by another version")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes``, checked like a new config (an unknown field is a ``ConfigError``)."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ConfigError(f"unknown field(s) {unknown} for {type(self).__name__}; "
                              f"known: {sorted(self.field_names())}")
        return dataclasses.replace(self, **changes)


# ------------------------------------------------------------------------------ value checks
def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high], else ``ConfigError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{name}={value} is out of range: it must be {bound}")
    return value


def check_fraction(name: str, value: Any, *, allow_zero: bool) -> float:
    """A finite number in (0, 1] (or [0, 1] with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= 1):
        bound = "[0, 1]" if allow_zero else "(0, 1]"
        raise ConfigError(f"{name}={value} is out of range: it must be in {bound}")
    return float(value)


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> float:
    """A finite real number (not a bool) in [low, high] (``low_open``: (low, high]), else ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {type(value).__name__} {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or high is not None and value > high:
        bounds = [f"{'>' if low_open else '>='} {low}" if low is not None else "",
                  f"<= {high}" if high is not None else ""]
        raise ConfigError(f"{name}={value} is out of range: it must be {' and '.join(b for b in bounds if b)}")
    return float(value)


def check_choice(name: str, value: Any, choices: typing.Iterable[Any], what: str = "") -> Any:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is unknown: use one of {list(choices)}{what}")
    return value


def split_options(kind: str, name: str, options: dict[str, Any], types: typing.Sequence[type[Config]],
                  extra: typing.Iterable[str] = ()) -> list[dict[str, Any]]:
    """Split keyword ``options`` by the fields of ``types`` (one dict per type, in order); a keyword no
    type has is a ``ConfigError`` listing the allowed ones (with ``extra``, accepted elsewhere);
    ``kind``/``name`` say whose options they are."""
    allowed = {f for t in types for f in t.field_names()}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for {kind} {name!r}; allowed: {sorted(allowed | set(extra))}")
    return [{k: v for k, v in options.items() if k in t.field_names()} for t in types]
