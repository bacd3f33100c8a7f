"""``PromptedCLIP``: a user's CLIP model plus a prompt module, attached without forking it."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attachment import ModuleState, check_not_attached, mark_attached, mark_detached
from .backends import Backend, resolve
from .classes import ClassSelector, class_indices
from .checkpoint import DEFAULT_TEMPLATE, DEFAULT_ZERO_SHOT_TEMPLATE, AdapterConfig, load_into
from .config import Config
from .errors import ClassNameError, ConfigError, PromptPluginsError, ShapeError
from .inputs import check_images
from .precision import at_least_fp32
from .prompts.base import PromptModule, Prompts
from .text_cache import TextFeatureCache
from .text_requests import encode_requests
from .tokenization import ClassTokens, as_tokenizer, check_classnames, check_template, tokenize_classes
from .towers import PREFIX as TOWER_PREFIX, TowerWeights
from .visual_hooks import VisualPromptHooks


#: ``prompt_dtype`` -> the dtype prompts are cast to where they enter a tower (None: the tower's own)
PROMPT_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "fp16": torch.float16}


@dataclass
class PromptedOptions(Config):
    """Options of ``PromptedCLIP`` itself, shared by every method: the text after the context slots,
    the zero-shot template of ``disabled()``, gradient checkpointing of the text blocks, how 5-D videos are
    laid out (None: from the shape; (B, 3, 3, H, W) is then refused as ambiguous), whether float pixels
    beyond ±20 (0-255 images) are refused (``inputs.py``) and ``prompt_dtype``: "fp32" (default: prompts stay
    fp32 and are cast to the tower's dtype where they enter it) or "fp16" (cast to fp16 first, as the released
    MaPLe / IVLP / PromptSRC / PromptKD trainers do whatever their precision, for parity with their
    checkpoints; not saved with an adapter: pass it again to ``from_pretrained``)."""

    template: str = DEFAULT_TEMPLATE
    zero_shot_template: str = DEFAULT_ZERO_SHOT_TEMPLATE
    grad_checkpointing: bool = False
    video_layout: Literal["BTCHW", "BCTHW"] | None = None
    check_range: bool = True
    prompt_dtype: Literal["fp32", "fp16"] = "fp32"

    def check(self) -> None:
        check_template("template", self.template)
        check_template("zero_shot_template", self.zero_shot_template)


class PromptedCLIP(nn.Module):
    """A frozen CLIP model with a trainable prompt module.

    ``forward(images) -> (B, C)`` logits scaled by ``logit_scale.exp()``; images are
    (B, 3, H, W), or videos (B, T, 3, H, W) encoded frame by frame and mean-pooled over T
    before normalisation (ViFi-CLIP). Only the prompt module's parameters train; the CLIP
    weights are frozen on attach, and ``eject()`` restores the ``requires_grad`` and training
    flags the model had.
    One per model at a time: a model whose earlier wrapper is attached raises ``ConfigError``.
    """

    def __init__(self, model: nn.Module, classnames: Sequence[str], prompt: PromptModule, *, tokenizer: Any = None,
                 template: str = DEFAULT_TEMPLATE, zero_shot_template: str = DEFAULT_ZERO_SHOT_TEMPLATE,
                 method: str = "coop", grad_checkpointing: bool = False, video_layout: str | None = None,
                 check_range: bool = True, prompt_dtype: str = "fp32", backend: Backend | None = None):
        super().__init__()
        check_not_attached(model)
        self.backend: Backend = resolve(model) if backend is None else backend
        self.model = model
        self.prompt = prompt
        self.method = method
        self.template = template
        self.zero_shot_template = zero_shot_template
        self.grad_checkpointing = grad_checkpointing
        #: defaults of ``encode_image``'s ``layout`` and ``check_range`` (see ``PromptedOptions``)
        self.video_layout, self.check_range = video_layout, check_range
        if prompt_dtype not in PROMPT_DTYPES:
            raise ConfigError(f"prompt_dtype={prompt_dtype!r} is unknown: use one of {list(PROMPT_DTYPES)}")
        #: "fp16": prompts are rounded to fp16 where they enter the towers (``PromptedOptions``)
        self.prompt_dtype = prompt_dtype
        self.tokenizer = as_tokenizer(tokenizer) if tokenizer is not None else self.backend.default_tokenizer()
        self._found = ModuleState.capture(model)
        self._enabled = True
        self._ejected = False
        #: most cached class-feature entries kept (0 disables the cache); see ``encode_text_multi``
        self.text_cache_size = 8
        self._text_cache = TextFeatureCache()
        #: a checkpoint's own tower weights put into ``model`` while attached (``set_tower_weights``)
        self._towers: TowerWeights | None = None
        self.set_classnames(classnames)
        self._hooks = VisualPromptHooks(self.backend) if prompt().visual is not None else None
        model.requires_grad_(False)  # last: a class list refused above leaves the model as it was
        mark_attached(model, self)

    # ------------------------------------------------------------------ classes
    @property
    def classnames(self) -> list[str]:
        return list(self.tokens.classnames)

    def set_classnames(self, classnames: Sequence[str]) -> None:
        """Re-target the prompts to a new class list (class-agnostic prompts only)."""
        names = check_classnames(classnames)
        if self.prompt.class_specific and getattr(self, "tokens", None) is not None and names != self.classnames:
            raise ClassNameError(
                f"this prompt has class-specific context for {self.prompt.ctx.shape[0]} classes, one per name of "
                f"{self.classnames[:6]}{' ...' if len(self.classnames) > 6 else ''} in that order; it cannot be "
                f"re-targeted to {names[:6]}{' ...' if len(names) > 6 else ''} (each class would get another "
                "class's context). Use class_specific=False for a class list that changes")
        kw = dict(context_length=self.backend.context_length)
        self.tokens: ClassTokens = tokenize_classes(
            self.tokenizer, names, n_ctx=self.prompt.n_ctx, ctx_words=self.prompt.ctx_words,
            template=self.template, **kw)
        self.prompt.bind_classnames(names)
        self._text_cache.clear()
        self.zero_shot_tokens: ClassTokens = tokenize_classes(
            self.tokenizer, names, template=self.zero_shot_template, **kw)

    def class_indices(self, classes: ClassSelector) -> Tensor | None:
        """Class names or indices -> LongTensor of indices (None: all classes)."""
        return class_indices(classes, self.tokens.classnames)

    # ------------------------------------------------------------------ encoders
    def prompts(self) -> Prompts:
        return self.prompt()

    def encode_text(self, classes: ClassSelector = None, *, prompts: Prompts | None = None,
                    normalize: bool = True) -> Tensor:
        """(C, E) class features for ``classes`` (default: all): fp32, or fp64 for a float64 model;
        L2-normalised by default.

        Features are cached when they cannot need gradients (see :meth:`encode_text_multi`)."""
        return self.encode_text_multi([(classes, prompts)], normalize=normalize)[0]

    def encode_text_multi(self, requests: Sequence[tuple[ClassSelector, Prompts | None]], *,
                          normalize: bool = True) -> list[Tensor]:
        """Features for several (classes, prompts) requests, computed in one pass through the
        text tower; ``prompts=None`` uses the prompt module (e.g. DPC: base classes with the tuned
        prompt X and new classes with the frozen backbone prompt P). -> list of (C_i, E), fp32 (fp64 for a
        float64 model).

        Requests that need gradients run in one pass; the others in a second pass without a
        graph (their features never require grad).

        **Cache.** A request that cannot need gradients (grad disabled, or neither a prompt tensor
        nor a CLIP weight requires grad) is served from a small cache of class features. An entry is
        keyed on: enabled/``disabled()`` state, the class list (``set_classnames`` clears the
        cache), the class selection, autocast state, model dtype/device, and, for every prompt
        tensor (the prompt module's parameters and buffers for ``prompts=None``, else the given
        ``text``/``text_deep``), its identity, ``data_ptr`` and ``_version`` counter, so any
        in-place update (optimiser step, ``load_state_dict``, ``copy_``) or a new tensor
        invalidates it. Entries hold references to those tensors, so ids cannot be recycled.
        The CLIP weights are assumed frozen: call :meth:`clear_text_cache` after changing them.

        Prompts with ``class_features`` (stored class features, e.g. PromptKD's teacher) are served from
        them: the text tower does not run (``disabled()`` still encodes the zero-shot prompts).
        """
        self._check_attached()
        return [F.normalize(f, dim=-1) if normalize else f.clone() if not f.requires_grad else f
                for f in encode_requests(self, requests)]

    def clear_text_cache(self) -> None:
        """Drop every cached class feature (done automatically when prompts or classes change)."""
        self._text_cache.clear()

    def encode_image(self, images: Tensor, *, prompts: Prompts | None = None, normalize: bool = True,
                     layout: str | None = None, check_range: bool | None = None) -> Tensor:
        """(B, 3, H, W) images or (B, T, 3, H, W) videos -> (B, E) features, fp32 or wider (normalised by default).
        ``layout`` ("BTCHW"/"BCTHW") and ``check_range`` default to ``video_layout`` / ``check_range``."""
        self._check_attached()
        frames, flat = check_images(images, self.backend.image_size, layout=layout or self.video_layout,
                                    check_range=self.check_range if check_range is None else check_range)
        flat = flat.to(self.backend.dtype)
        p = None
        if self._enabled and (self._hooks is not None or getattr(self.prompt, "provides_image_head", False)):
            p = self.prompt() if prompts is None else prompts
            if frames is not None and p.temporal is not None and p.temporal.shape[0] != frames:
                raise ShapeError(f"temporal prompts are for T={p.temporal.shape[0]} frames, got videos of T={frames}")
            if frames is None and p.temporal is not None:
                p = p.without_temporal()
            p = p.rounded(self.entering_dtype)
        if self._hooks is not None:
            with self._hooks.active(p):
                feats = self.backend.encode_image(flat)
        else:
            feats = self.backend.encode_image(flat)
        feats = at_least_fp32(feats)
        if p is not None and p.image_head is not None:  # per frame, before pooling (PromptKD's projector)
            feats = at_least_fp32(p.image_head(feats))
        if frames is not None:  # ViFi-CLIP: mean over frames first, then normalise
            feats = feats.view(-1, frames, feats.shape[-1]).mean(dim=1)
        return F.normalize(feats, dim=-1) if normalize else feats

    @property
    def entering_dtype(self) -> torch.dtype | None:
        """The dtype prompts are cast to before they enter a tower (None: none; see ``prompt_dtype``)."""
        return PROMPT_DTYPES[self.prompt_dtype]

    def logits(self, image_features: Tensor, text_features: Tensor) -> Tensor:
        return at_least_fp32(self.backend.logit_scale.exp()) * image_features @ text_features.t()

    def forward(self, images: Tensor, classes: ClassSelector = None, *, layout: str | None = None,
                check_range: bool | None = None) -> Tensor:
        """(B, C) logits over ``classes`` (default: all); ``layout``/``check_range`` as in ``encode_image``."""
        return self.logits(self.encode_image(images, layout=layout, check_range=check_range),
                           self.encode_text(classes))

    # ------------------------------------------------------------------ checks
    def _check_attached(self) -> None:
        if self._ejected:
            raise PromptPluginsError("this PromptedCLIP was ejected; wrap the model again to use prompts")
        if (self.backend.dtype == torch.float16 and torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16):
            # PyTorch's CPU autocast cannot concatenate fp16 tensors under bf16 (the library's own
            # encode_image fails the same way); say so instead of a cryptic RuntimeError.
            raise ConfigError(
                "this model has fp16 weights but CPU autocast is set to bfloat16, which PyTorch cannot run "
                "(torch.cat of fp16 tensors fails). Use torch.autocast('cpu', dtype=torch.float16), "
                "or model.float() for bf16 autocast")

    # ------------------------------------------------------------------ control
    @contextmanager
    def disabled(self) -> Iterator["PromptedCLIP"]:
        """Inside this block the model behaves as the untouched zero-shot CLIP
        (``zero_shot_template`` for text, no visual prompts)."""
        previous, self._enabled = self._enabled, False
        try:
            yield self
        finally:
            self._enabled = previous

    def eject(self) -> nn.Module:
        """Remove every hook, restore the ``requires_grad`` and training flags found on attach and return the
        untouched model (once: a second call only returns it, so it never unfreezes weights a later wrapper
        has frozen)."""
        if self._ejected:
            return self.model
        if self._hooks is not None:
            self._hooks.remove()
            self._hooks = None
        self.set_tower_weights(None)
        self._found.restore(self.model)
        self._ejected = True
        self._text_cache.clear()
        mark_detached(self.model, self)
        return self.model

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        trainable = sum(p.numel() for p in self.trainable_parameters())
        return trainable, sum(p.numel() for p in self.parameters())

    def print_trainable_parameters(self) -> str:
        trainable, total = self.parameter_counts()
        line = f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}"
        print(line)
        return line

    # ------------------------------------------------------------------ checkpoints
    def adapter_config(self) -> AdapterConfig:
        return AdapterConfig(method=self.method, prompt=self.prompt.config(), template=self.template,
                             zero_shot_template=self.zero_shot_template, classnames=self.classnames,
                             backbone=self.backend.fingerprint())

    def adapter_state_dict(self) -> dict[str, Tensor]:
        """``prompt.*`` (the prompt module's state) and, when set, ``tower.*`` (``set_tower_weights``)."""
        state = {f"prompt.{k}": v.detach() for k, v in self.prompt.state_dict().items()}
        return state if self._towers is None else {**state, **self._towers.state_dict()}

    def load_adapter_state_dict(self, state: dict[str, Tensor]) -> None:
        towers = {k[len(TOWER_PREFIX):]: v for k, v in state.items() if k.startswith(TOWER_PREFIX)}
        load_into(self.prompt, {k: v for k, v in state.items() if not k.startswith(TOWER_PREFIX)}, prefix="prompt.")
        if towers:
            self.set_tower_weights(towers)
        self._text_cache.clear()

    def set_tower_weights(self, tensors: dict[str, Tensor] | None) -> None:
        """Run the model with these weights (``model.state_dict()`` names) in place of its own until ``eject()``
        or the next call (None: its own weights back): a released checkpoint's frozen towers, for exact parity.
        They are saved with the adapter as ``tower.*``."""
        if self._towers is not None:
            self._towers.restore()
            self._towers = None
        if tensors:
            self._towers = TowerWeights(self.model, tensors)
        self._text_cache.clear()

    def extra_repr(self) -> str:
        return f"backend={self.backend.name}, method={self.method}, classes={len(self.tokens.classnames)}"

