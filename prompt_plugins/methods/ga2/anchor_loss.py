"""GA2-CLIP generic attribute anchors (GAA): keep irrelevant "anchor" videos where frozen CLIP puts them.

Modes (spec §1.3, §7):

``anchor_kl`` (default)
    For anchor videos a and K generic attribute / negative prompts n_k (frozen-CLIP text features):
    ``λ · KL( softmax_k(s·cos(v_a^frozen, n_k)) ‖ softmax_k(s·cos(v_a^prompted, n_k)) )`` (batch mean).
    The frozen side comes from the model's own ``disabled()`` path (no second CLIP copy). With
    ``bank_side="prompted"`` the prompted side also encodes the bank through the learned text context
    (``[ctx] {attribute}.``), which constrains text-only prompts too; the frozen side always uses
    ``frozen_template`` ("a video of a person {}." as released). With the default ``bank_side="frozen"``
    only visual prompts move the anchors: on text-only prompts the term is exactly 0, so ``from_model``
    refuses that combination.
``parity``
    The released term: ``CE(logits + s·α·mean_a(v̂_a·n̂), y)``. The anchor term is the same for every
    class, so softmax-CE ignores it: **the loss equals plain CE and its gradient through the anchor
    branch is zero** (spec T4). Provided for checkpoint/log parity only; it does not regularise.
``else_class``
    The bank prompts become extra classes; anchors are pushed toward them with
    ``λ · −log Σ_k p(n_k | a)`` over [class texts ; bank texts].

The default bank ``DEFAULT_ATTRIBUTE_BANK`` is prompt-plugins' own choice of generic attributes: only
"else" comes from the GA2-CLIP release (its single negative prompt).
"""
from __future__ import annotations

import weakref
from typing import Any, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import check_number
from ...errors import ClassNameError, ConfigError, ShapeError, check_finite
from ...precision import at_least_fp32
from ...text_encoder import encode_tokens
from ...tokenization import check_classnames, check_template, tokenize_classes

MODES = ("anchor_kl", "parity", "else_class")
BANK_SIDES = ("frozen", "prompted")

#: generic attributes, rendered with ``frozen_template``: prompt-plugins' own choice, except "else", the
#: GA2-CLIP release's single negative prompt
DEFAULT_ATTRIBUTE_BANK: tuple[str, ...] = (
    "else", "something else", "doing nothing in particular", "in the background", "in a room", "outdoors",
    "in the dark", "in bright light", "moving quickly", "standing still", "seen from far away", "seen up close",
    "with other people", "alone", "holding an object", "on a blurry video",
)


def _has_visual_prompts(prompted) -> bool:
    """Whether ``prompted.prompt()`` has a visual part, asked without drawing from the RNG a training loop
    uses (GA2's coupler applies dropout)."""
    return prompted.prompt.affects_image()


class AnchorStream:
    """Cycles over any re-iterable of anchor clips (a DataLoader, a list, a Dataset): yields tensors.

    Items may be tensors or ``(clip, label, ...)`` tuples (the first element is used). A clip of
    shape (T, 3, H, W) is batched to (1, T, 3, H, W).
    """

    def __init__(self, anchors: Iterable[Any]):
        if isinstance(anchors, Tensor):
            anchors = [anchors]
        self.anchors = anchors
        self._it: Iterator[Any] | None = None

    def _restart(self) -> None:
        self._it = iter(self.anchors)

    def __next__(self) -> Tensor:
        if self._it is None:
            self._restart()
        try:
            item = next(self._it)
        except StopIteration:
            self._restart()
            try:
                item = next(self._it)
            except StopIteration:
                raise ConfigError("the anchor iterable is empty (or a one-shot iterator that is used up): pass a "
                                  "re-iterable of anchor clips such as a list or a DataLoader") from None
        if isinstance(item, (tuple, list)):
            item = item[0]
        if not isinstance(item, Tensor):
            raise ShapeError(f"anchor items must be tensors or (clip, ...) tuples, got {type(item).__name__}")
        return item.unsqueeze(0) if item.dim() in (3, 4) else item

    def __iter__(self) -> "AnchorStream":
        return self


class AttributeAnchorLoss(nn.Module):
    """Attribute-anchor regulariser. Use ``forward`` on features/logits, or ``from_model`` with a
    ``PromptedCLIP`` and an anchor batch (or the ``anchors`` iterable given here).

    bank: attribute phrases (default ``DEFAULT_ATTRIBUTE_BANK``, prompt-plugins' own choice: only "else" comes
    from the GA2-CLIP release, its single negative prompt); frozen_template renders them for frozen CLIP.
    weight: λ; alpha: α of ``parity``; scale: logit scale s (None: the model's ``logit_scale.exp()``, 100 for CLIP).
    bank_side: "frozen" (default) reads the bank with frozen CLIP on both sides, so ``anchor_kl`` needs visual
    prompts (text-only prompts leave the anchors' features unchanged: ``from_model`` raises ``ConfigError``);
    "prompted" reads it through the learned text context on the prompted side, which also trains text prompts.
    """

    def __init__(self, bank: Sequence[str] | None = None, *, mode: str = "anchor_kl", weight: float = 1.0,
                 alpha: float = 1.0, scale: float | None = None, frozen_template: str = "a video of a person {}.",
                 bank_side: str = "frozen", anchors: Iterable[Any] | None = None):
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"mode={mode!r}: choose from {MODES}")
        if bank_side not in BANK_SIDES:
            raise ConfigError(f"bank_side={bank_side!r}: choose from {BANK_SIDES}")
        self.bank = list(DEFAULT_ATTRIBUTE_BANK if bank is None else bank)
        if isinstance(bank, str) or not self.bank or not all(isinstance(b, str) and b.strip() for b in self.bank):
            raise ConfigError("bank must be a non-empty list of non-blank attribute phrases")
        try:
            check_classnames(self.bank, "bank")
        except ClassNameError as exc:
            raise ConfigError(f"bank: {exc}") from None
        if mode == "parity" and len(self.bank) != 1:
            raise ConfigError(f"mode='parity' reproduces the released single negative prompt; pass one phrase "
                              f"(e.g. bank=['else']), got {len(self.bank)}")
        check_template("frozen_template", frozen_template)
        self.weight = check_number("weight", weight, low=0.0)
        self.alpha = check_number("alpha", alpha)
        self.scale = None if scale is None else check_number("scale", scale, low=0.0, low_open=True)
        self.mode = mode
        self.frozen_template, self.bank_side = frozen_template, bank_side
        self.stream = AnchorStream(anchors) if anchors is not None else None
        #: model -> (tower dtype, bank features); weak keys, so a freed model's entry goes with it
        self._frozen_bank: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------------ features / logits
    def forward(self, anchor_features: Tensor, bank_features: Tensor, *, frozen_anchor_features: Tensor | None = None,
                prompted_bank_features: Tensor | None = None, class_features: Tensor | None = None,
                logits: Tensor | None = None, labels: Tensor | None = None, scale: float | Tensor | None = None
                ) -> Tensor:
        """All features L2-normalised. anchor_features (N, E) prompted anchors; bank_features (K, E) frozen bank.

        anchor_kl:  needs frozen_anchor_features (N, E); prompted_bank_features (K, E) optional.
        parity:     needs logits (B, C) (already scaled) and labels (B,); returns the full released CE.
        else_class: needs class_features (C, E).
        """
        s = self._scale(scale)
        if anchor_features.dim() != 2 or bank_features.dim() != 2 or anchor_features.shape[1] != bank_features.shape[1]:
            raise ShapeError(f"anchor features {tuple(anchor_features.shape)} and bank features "
                             f"{tuple(bank_features.shape)} must be (N, E) and (K, E)")
        for name, t in (("anchor_features", anchor_features), ("bank_features", bank_features),
                        ("frozen_anchor_features", frozen_anchor_features), ("class_features", class_features),
                        ("logits", logits)):
            check_finite(name, t)
        if self.mode == "anchor_kl":
            if frozen_anchor_features is None:
                raise ConfigError("mode='anchor_kl' needs frozen_anchor_features (the anchors under model.disabled())")
            target = F.log_softmax(s * frozen_anchor_features.detach() @ bank_features.detach().t(), dim=-1)
            bank = bank_features if prompted_bank_features is None else prompted_bank_features
            pred = F.log_softmax(s * anchor_features @ bank.t(), dim=-1)
            return self.weight * F.kl_div(pred, target, log_target=True, reduction="batchmean")
        if self.mode == "parity":
            if logits is None or labels is None:
                raise ConfigError("mode='parity' needs logits (B, C) and labels (B,): it returns the released CE")
            shift = (anchor_features @ bank_features.t()).mean()
            return F.cross_entropy(logits + s * self.alpha * shift, labels)
        if class_features is None:
            raise ConfigError("mode='else_class' needs class_features (C, E)")
        all_logits = s * anchor_features @ torch.cat([class_features, bank_features]).t()
        n_cls = class_features.shape[0]
        return self.weight * (all_logits.logsumexp(-1) - all_logits[:, n_cls:].logsumexp(-1)).mean()

    def _scale(self, scale: float | Tensor | None) -> float | Tensor:
        if scale is not None:
            return scale
        return 100.0 if self.scale is None else self.scale

    # ------------------------------------------------------------------ model convenience
    def frozen_bank_features(self, prompted) -> Tensor:
        """(K, E) frozen-CLIP text features of the bank (cached per model; no gradient)."""
        key, dtype = prompted.backend.model, prompted.backend.dtype
        if key not in self._frozen_bank or self._frozen_bank[key][0] != dtype:
            tokens = tokenize_classes(prompted.tokenizer, self.bank, context_length=prompted.backend.context_length,
                                      template=self.frozen_template)
            with torch.no_grad():
                feats = F.normalize(at_least_fp32(encode_tokens(prompted.backend, tokens)), dim=-1)
            self._frozen_bank[key] = (dtype, feats)
        return self._frozen_bank[key][1]

    def prompted_bank_features(self, prompted) -> Tensor:
        """(K, E) bank features through the learned text context: ``[ctx] {attribute}`` + the model's template."""
        tokens = tokenize_classes(prompted.tokenizer, self.bank, context_length=prompted.backend.context_length,
                                  n_ctx=prompted.prompt.n_ctx, ctx_words=prompted.prompt.ctx_words,
                                  template=prompted.template)
        p = prompted.prompts()
        return F.normalize(at_least_fp32(encode_tokens(prompted.backend, tokens, None, p.text, p.text_deep)), dim=-1)

    def next_anchors(self) -> Tensor:
        if self.stream is None:
            raise ConfigError("no anchors: pass anchors=... to AttributeAnchorLoss or to from_model()")
        return next(self.stream)

    def from_model(self, prompted, anchors: Tensor | None = None, *, logits: Tensor | None = None,
                   labels: Tensor | None = None) -> Tensor:
        """The loss for ``prompted`` (a ``PromptedCLIP``) on an anchor batch (N, T, 3, H, W) or (N, 3, H, W)
        (default: the next batch of the ``anchors`` iterable). ``parity`` also needs the batch logits/labels."""
        self._check_has_signal(prompted)
        if anchors is None:
            anchors = self.next_anchors()
        bank = self.frozen_bank_features(prompted).to(prompted.backend.device)
        feats = prompted.encode_image(anchors)
        s = self._scale(None) if self.scale is not None else at_least_fp32(prompted.backend.logit_scale.exp()).detach()
        kwargs: dict[str, Any] = {}
        if self.mode == "anchor_kl":
            with torch.no_grad(), prompted.disabled():
                kwargs["frozen_anchor_features"] = prompted.encode_image(anchors)
            if self.bank_side == "prompted" and prompted._enabled:
                kwargs["prompted_bank_features"] = self.prompted_bank_features(prompted)
        elif self.mode == "else_class":
            kwargs["class_features"] = prompted.encode_text()
        return self(feats, bank, logits=logits, labels=labels, scale=s, **kwargs)

    def _check_has_signal(self, prompted) -> None:
        """``anchor_kl`` with the frozen bank on text-only prompts is exactly 0 (prompted anchors == frozen ones)."""
        if self.mode == "anchor_kl" and self.bank_side == "frozen" and not _has_visual_prompts(prompted):
            raise ConfigError(
                "AttributeAnchorLoss(mode='anchor_kl', bank_side='frozen') on a model whose prompts are text-only "
                "(no visual prompts) is exactly 0 with no gradient: the prompted anchors' image features equal the "
                "frozen ones. Use bank_side='prompted' (the bank is then read through the learned text context), "
                "or add visual prompts (n_visual_ctx > 0)")

    def extra_repr(self) -> str:
        return f"mode={self.mode}, weight={self.weight}, bank={len(self.bank)} prompts, bank_side={self.bank_side}"
