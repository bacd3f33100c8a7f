"""How ``ctx_init`` words become a learned context, shared by every method that takes them.

Two rules (``ctx_init_rule``):

``"released"`` (MaPLe, IVLP, PromptSRC and PromptKD as released; spec backbones.md §0)
    With ``ctx_init`` set and ``n_ctx <= 4`` the first ``n_ctx`` tokens of ``ctx_init`` are learned (initialised
    from their token embeddings) and the remaining words stay in the prompt as fixed tokens: N_CTX 2 and
    "a photo of a" learn "a photo" and keep "of a", so the class prompt is ``[SOS] c1 c2 of a {name} . [EOT]``
    (template "of a {}."). With ``n_ctx > 4`` the context is random (N(0, std²)) and no word is fixed: the
    released trainers then ignore ``ctx_init``. ``_`` in ``ctx_init`` reads as a space, as released.
``"whole"`` (CoOp, prompt-plugins' ``SoftPrompt``)
    Every token of ``ctx_init`` is learned: ``n_ctx`` must equal their count (or be None).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import check_choice
from ..errors import ConfigError

CTX_INIT_RULES = ("released", "whole")
#: the released trainers initialise the context from ``ctx_init`` only up to this many tokens
RELEASED_MAX_INIT_TOKENS = 4


@dataclass(frozen=True)
class ContextWords:
    """What a rule made of (``n_ctx``, ``ctx_init``). n_ctx: context slots (None: the module's default);
    learned: the words whose embeddings initialise the context (exactly ``n_ctx`` tokens; None: random init);
    fixed: words kept as fixed tokens after the context (``""``: none)."""

    n_ctx: int | None
    learned: str | None
    fixed: str = ""

    def template(self, template: str) -> str:
        """``template`` with the fixed words before it: "{}." -> "of a {}."."""
        return f"{self.fixed} {template}" if self.fixed else template


def split_ctx_init(tokenizer: Any, n_ctx: int | None, ctx_init: str | None, rule: str = "released") -> ContextWords:
    """Apply ``rule`` (see the module docstring) to ``n_ctx`` and ``ctx_init`` with ``tokenizer``
    (``backends.Tokenizer``: ``encode`` without special tokens, optional ``decode``)."""
    check_choice("ctx_init_rule", rule, CTX_INIT_RULES)
    if ctx_init is None:
        return ContextWords(n_ctx, None)
    if rule == "whole":
        return ContextWords(n_ctx, ctx_init)
    words = " ".join(ctx_init.replace("_", " ").split())
    ids = tokenizer.encode(words)
    n = len(ids) if n_ctx is None else n_ctx
    if n > RELEASED_MAX_INIT_TOKENS:
        return ContextWords(n, None)
    if n > len(ids):
        raise ConfigError(
            f"ctx_init {ctx_init!r} is {len(ids)} token(s), fewer than n_ctx={n}: the released rule would initialise "
            "the extra context slots with the end-of-text and padding embeddings. Pass n_ctx <= "
            f"{len(ids)}, more words, or ctx_init=None (random context)")
    if n == len(ids):
        return ContextWords(n, words)
    learned, fixed = _words_of(tokenizer, ids[:n], words), _words_of(tokenizer, ids[n:], words)
    return ContextWords(n, learned, fixed)


def _words_of(tokenizer: Any, ids: list[int], words: str) -> str:
    """The text of ``ids`` (a part of ``words``' tokens), which must encode back to the same ids."""
    text = None
    if getattr(tokenizer, "decode", None) is not None:
        text = " ".join(tokenizer.decode(list(ids)).split())
    if text is None or tokenizer.encode(text) != list(ids):
        raise ConfigError(
            f"ctx_init {words!r}: its tokens {list(ids)} cannot be written as words on their own (the context "
            "ends inside a word, or this tokenizer cannot decode), so the fixed part of the prompt cannot be kept. "
            "Pass an n_ctx that ends on a word boundary, or ctx_init_rule='whole'")
    return text
