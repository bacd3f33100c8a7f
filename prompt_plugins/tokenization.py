"""Prompt templates as token ids, with slot and EOT positions recorded, never searched for.

A class prompt is laid out as ``[SOS] slot_1 .. slot_n  <class name words> [EOT] pad..``:
the ``n`` context slots sit at positions ``1 .. n`` and the EOT index is
``1 + n + len(BPE(name + suffix))``. The words in the slots are only placeholders (or the
``ctx_init`` words, which gives zero-shot parity at initialisation); their embeddings are
replaced by the prompt module's context vectors.
"""
from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterable, Mapping, Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from .backends.base import Tokenizer
from .errors import ClassNameError, ConfigError, PromptTooLongError

#: placeholder word for context slots without ``ctx_init`` (CoOp uses "X"); never searched for
PLACEHOLDER = "X"


def as_tokenizer(obj: Any) -> Tokenizer:
    """Accept a ``Tokenizer``, an OpenAI/open_clip ``SimpleTokenizer`` or a Hugging Face CLIP tokenizer."""
    if isinstance(obj, Tokenizer):
        return obj
    if hasattr(obj, "encoder") and hasattr(obj, "bpe") and (
            hasattr(obj, "sot_token_id") or "<|startoftext|>" in obj.encoder):
        from .backends.openai_clip import bpe_tokenizer

        return bpe_tokenizer(obj)
    if hasattr(obj, "bos_token_id") and hasattr(obj, "eos_token_id") and hasattr(obj, "encode"):
        pad = obj.pad_token_id if obj.pad_token_id is not None else obj.eos_token_id
        return Tokenizer(
            encode=lambda text: list(obj.encode(text, add_special_tokens=False)),
            sos_id=obj.bos_token_id, eot_id=obj.eos_token_id, pad_id=pad,
            decode=lambda ids: obj.decode(ids, clean_up_tokenization_spaces=True),
        )
    raise ConfigError(
        f"unsupported tokenizer {type(obj).__name__}: pass a clip/open_clip SimpleTokenizer, "
        "a transformers CLIPTokenizer, or prompt_plugins.backends.Tokenizer"
    )


def normalize_classname(name: str) -> str:
    """What a CLIP tokenizer sees of a class name: Unicode NFKC, invisible format characters dropped (a byte-order
    mark, zero-width spaces), case folded, whitespace runs collapsed and stripped (``"Red  Circle "``,
    ``"\ufeffred circle"`` and ``"red circle"`` give identical prompts)."""
    text = "".join(c for c in unicodedata.normalize("NFKC", name) if unicodedata.category(c) != "Cf")
    return " ".join(text.split()).casefold()


def check_classnames(classnames: Sequence[str], what: str = "classnames") -> list[str]:
    """Validate a class list: an ordered, non-empty sequence of non-blank strings, no two alike once
    normalised (``normalize_classname``: they would get identical prompts)."""
    if isinstance(classnames, str):
        raise ClassNameError(f"{what} must be a list of strings, got the single string {classnames!r}; "
                             f"pass [{classnames!r}]")
    if isinstance(classnames, AbstractSet):
        raise ClassNameError(f"{what} is a {type(classnames).__name__}, whose order changes between runs (and "
                             f"with it which output column is which class): pass a list, e.g. sorted({what})")
    if classnames is None or not isinstance(classnames, Iterable) or isinstance(classnames, (bytes, Mapping)):
        hint = "; for a {name: index} dict pass sorted(d, key=d.get)" if isinstance(classnames, Mapping) else ""
        raise ClassNameError(f"{what} must be a list of class-name strings, got {type(classnames).__name__} "
                             f"{classnames!r:.80}{hint}")
    names = list(classnames)
    if not names:
        raise ClassNameError("the class list is empty: pass at least one class name")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise ClassNameError(f"class name #{i} is {type(name).__name__}, not str: {name!r}")
        key = normalize_classname(name)
        if not key:
            raise ClassNameError(f"class name #{i} is blank{'' if not name.strip() else f' ({name!r}: invisible characters only)'}")
        if key in seen:
            j = seen[key]
            if names[j] == name:
                raise ClassNameError(f"duplicate class name {name!r} at positions {j} and {i}")
            raise ClassNameError(
                f"class names {names[j]!r} (#{j}) and {name!r} (#{i}) differ only by case, spaces or Unicode form: "
                "CLIP's tokenizer gives them identical prompts, so the two classes could never be told apart. "
                "Rename one, or merge them")
        seen[key] = i
    return names


def check_template(name: str, value: str) -> str:
    """A prompt template holds exactly one ``{}`` (the class name) and no other format field."""
    if not isinstance(value, str):
        raise ConfigError(f"{name}={value!r} ({type(value).__name__}) must be a string holding one '{{}}'")
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(value) if f is not None or spec or conv]
    except ValueError as exc:  # a lone "{" or "}"
        raise ConfigError(f"{name} {value!r} is not a valid template ({exc}); write literal braces as "
                          "'{{' and '}}'") from None
    if fields != [""] or "{}" not in value:
        raise ConfigError(f"{name} {value!r} must hold exactly one '{{}}' for the class name (found "
                          f"{len(fields)} format field(s){'' if all(f == '' for f in fields) else ': ' + repr(fields)})"
                          "; write literal braces as '{{' and '}}'")
    return value


@dataclass(frozen=True)
class ClassTokens:
    """Token ids of every class prompt. ``ids``: (C, context_length); ``eot``: (C,)."""

    ids: Tensor
    eot: Tensor
    n_ctx: int
    classnames: tuple[str, ...]

    @property
    def slots(self) -> slice:
        return slice(1, 1 + self.n_ctx)


def tokenize_classes(
    tokenizer: Tokenizer,
    classnames: Sequence[str],
    *,
    context_length: int,
    n_ctx: int = 0,
    ctx_words: str | None = None,
    template: str = "{}.",
) -> ClassTokens:
    """Token ids for ``[SOS] <n_ctx slots> template.format(name) [EOT]`` per class.

    ``ctx_words`` fills the slots with real words (it must encode to exactly ``n_ctx``
    tokens); otherwise placeholders fill them. With ``n_ctx=0`` this is plain zero-shot
    tokenisation of ``template``.
    """
    names = check_classnames(classnames)
    check_template("template", template)
    if ctx_words is not None:
        slot_ids = tokenizer.encode(ctx_words)
        if len(slot_ids) != n_ctx:
            raise ConfigError(f"ctx_init {ctx_words!r} is {len(slot_ids)} tokens, but n_ctx={n_ctx}")
    else:
        slot_ids = tokenizer.encode(" ".join([PLACEHOLDER] * n_ctx)) if n_ctx else []
        if len(slot_ids) != n_ctx:  # pragma: no cover - "X" is one token in CLIP's BPE
            raise ConfigError(f"placeholder {PLACEHOLDER!r} is not a single token for this tokenizer")
    ids = torch.full((len(names), context_length), tokenizer.pad_id, dtype=torch.long)
    eot = torch.empty(len(names), dtype=torch.long)
    for c, name in enumerate(names):
        row = [tokenizer.sos_id, *slot_ids, *tokenizer.encode(template.format(name)), tokenizer.eot_id]
        if len(row) > context_length:
            raise PromptTooLongError(
                f"class {name!r}: its prompt is {len(row)} tokens ({n_ctx} context + "
                f"{len(row) - n_ctx - 2} for the name + SOS/EOT), more than the context length "
                f"{context_length}. Shorten the class name or use fewer context tokens."
            )
        ids[c, : len(row)] = torch.tensor(row)
        eot[c] = len(row) - 1
    return ClassTokens(ids=ids, eot=eot, n_ctx=n_ctx, classnames=tuple(names))


def words_of_embeddings(tokenizer: Tokenizer, table: Tensor, embeddings: Tensor, *, source: str = "the checkpoint"
                        ) -> str:
    """The words whose token embeddings are ``embeddings`` (k, Dt): each row is matched to its nearest row of the
    token embedding ``table`` (V, Dt), which must agree to fp16 rounding, and the words must encode back to the same
    ids. A checkpoint's fixed prompt words (MaPLe's "of a" after two learned tokens) are read this way; anything
    else is a ``ConfigError`` that names ``template=`` as the fix."""
    if tokenizer.decode is None:
        raise ConfigError(f"{source} stores its fixed prompt words as token embeddings and this tokenizer cannot "
                          "decode ids: pass template='<words> {}.' (e.g. 'of a {}.')")
    table = table.detach().float()
    rows = embeddings.detach().float().to(table.device)
    ids = torch.cdist(rows, table).argmin(dim=1)
    err = (table[ids] - rows).abs().amax(dim=1) / table[ids].abs().amax(dim=1).clamp_min(1e-12)
    words = tokenizer.decode(ids.tolist()).strip()
    if bool((err > 2e-3).any()) or tokenizer.encode(words) != ids.tolist():
        raise ConfigError(
            f"{source} stores {len(rows)} fixed prompt word(s) as token embeddings that are not this CLIP's (closest "
            f"words {words!r}, relative error up to {float(err.max()):.2g}): the prompts were trained on another "
            "CLIP. Load the checkpoint's own CLIP, or pass template='<words> {}.' if you know the words")
    return words
