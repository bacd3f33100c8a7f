"""PromptKD's student: visual prompts in the student's visual tower, a projector of its image embedding into the
teacher's feature space, and the teacher's class text features stored by class name. The student has no text
tower and no text prompt (spec backbones.md §5.1-§5.3): class scores are ``logit_scale · f̂ · t̂_teacherᵀ``.

BatchNorm (the projector's ``conv1.1``) follows the released trainer: batch statistics while the student trains,
running statistics at test. Its statistics are learned state like the weights, so they move only while the
module trains its *own* projector (training mode, its parameters requiring grad). Whenever the module runs with
substituted tensors (DPC's routes through ``torch.func.functional_call``: P, the parallel prompt) or is frozen,
the projector uses its running statistics in every mode and never updates them: under DPC both routes share the
backbone's statistics, so new-class logits stay the backbone's and the hard-negative scorer changes nothing (our
choice; the released P' route re-estimated them, spec backbones.md §7.1).
"""
from __future__ import annotations

from typing import Callable, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...classes import did_you_mean
from ...config import check_int
from ...errors import ClassNameError, ConfigError, ShapeError
from ...prompts.base import PromptModule, Prompts
from ...tokenization import check_classnames
from .config import RELEASED_VISUAL_DEPTH, StudentOptions, StudentSection


class Projector(nn.Module):
    """The released ``VPT_image_trans`` layout: ``conv1`` = Conv1x1(E_s -> E_t) -> BatchNorm(E_t) -> ReLU ->
    Conv1x1(E_t -> E_t), applied to (N, E_s) image embeddings (parameter names ``conv1.{0,1,3}.*``, so released
    files import as they are). PyTorch's default initialisation, as released."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_dim, out_dim, 1), nn.BatchNorm2d(out_dim), nn.ReLU(inplace=True),
                                   nn.Conv2d(out_dim, out_dim, 1))

    @property
    def out_dim(self) -> int:
        return self.conv1[3].out_channels

    def function(self) -> tuple[Callable[[Tensor], Tensor], bool]:
        """(head, trains_statistics): a closure over the *current* tensors (those ``functional_call`` substituted,
        if any) mapping (N, E_s) -> (N, E_t); it uses batch statistics (and updates the running ones) only when
        the module trains its own parameters (module docstring)."""
        conv_in, bn, conv_out = self.conv1[0], self.conv1[1], self.conv1[3]
        w0, b0, w3, b3, gamma, beta = (conv_in.weight, conv_in.bias, conv_out.weight, conv_out.bias, bn.weight,
                                       bn.bias)
        own = all(isinstance(t, nn.Parameter) and t.requires_grad for t in (w0, gamma, w3))
        batch_stats = self.training and own
        mean, var, count, momentum, eps = bn.running_mean, bn.running_var, bn.num_batches_tracked, bn.momentum, bn.eps

        def head(x: Tensor) -> Tensor:
            x = x.to(w0.dtype)
            if batch_stats and x.shape[0] < 2:
                raise ShapeError("PromptKD's projector trains its BatchNorm on batch statistics: a training batch "
                                 f"needs at least 2 images, got {x.shape[0]}; use larger batches (or .eval())")
            h = F.linear(x, w0.flatten(1), b0)
            if batch_stats:
                count.add_(1)
            h = F.batch_norm(h, mean, var, gamma, beta, training=batch_stats, momentum=momentum, eps=eps)
            return F.linear(F.relu(h), w3.flatten(1), b3)

        return head, batch_stats


def _prompt(shape: tuple[int, ...], std: float) -> nn.Parameter:
    return nn.Parameter(torch.empty(shape).normal_(0.0, std))


class StudentPrompt(PromptModule):
    """Parameters: ``visual`` (n_v, Dv) tokens appended to the visual sequence (released ``image_encoder.VPT``),
    ``visual_deep`` (J-1, n_v, Dv) replacing them before blocks 1..J-1 (``resblocks.{1..}.VPT_shallow``), the
    ``projector`` (``Projector``); buffer ``teacher_features`` (K, E_t): the teacher's L2-normalised class text
    features, one row per name of ``teacher_classnames`` (a frozen parameter with ``features_per_route``).
    ``forward()`` returns the visual prompts, the projector as ``image_head`` and the rows of the bound class list
    as ``class_features``."""

    type_name = "promptkd"
    config_class = StudentSection
    provides_class_features: ClassVar[bool] = True
    provides_image_head: ClassVar[bool] = True

    def __init__(self, vision_width: int, embed_dim: int, teacher_features: Tensor, teacher_classnames: Sequence[str],
                 *, n_visual_ctx: int = 4, visual_depth: int = 1, init_std: float = 0.02,
                 features_per_route: bool = False):
        super().__init__()
        self.n_ctx = 0  # no text prompt: the class list is tokenised for ``disabled()`` only
        self.n_visual_ctx = check_int("n_visual_ctx", n_visual_ctx, 0)
        self.visual_depth = check_int("visual_depth", visual_depth, 1) if n_visual_ctx else 0
        self.init_std = float(init_std)
        self.visual = _prompt((n_visual_ctx, vision_width), init_std) if n_visual_ctx else None
        self.visual_deep = (_prompt((self.visual_depth - 1, n_visual_ctx, vision_width), init_std)
                            if n_visual_ctx and self.visual_depth > 1 else None)
        feats = check_teacher_features(teacher_features, teacher_classnames)
        self.projector = Projector(embed_dim, feats.shape[1])
        self.features_per_route = bool(features_per_route)
        self.teacher_classnames = list(teacher_classnames)
        if self.features_per_route:
            self.teacher_features = nn.Parameter(feats, requires_grad=False)
        else:
            self.register_buffer("teacher_features", feats)
        self.register_buffer("rows", torch.arange(len(self.teacher_classnames)), persistent=False)

    # ------------------------------------------------------------------ classes
    def bind_classnames(self, classnames: list[str]) -> None:
        """Select the stored teacher features of ``classnames``; a class the teacher has no features for is a
        ``ClassNameError`` naming it."""
        position = {name: i for i, name in enumerate(self.teacher_classnames)}
        missing = [c for c in classnames if c not in position]
        if missing:
            hint = did_you_mean(missing[0], self.teacher_classnames)
            raise ClassNameError(
                f"the teacher's text features cover {len(position)} classes and not {missing[:8]}"
                f"{' ...' if len(missing) > 8 else ''}{hint}: a PromptKD student scores classes with its teacher's "
                "features. Pass teacher= (a teacher PromptedCLIP whose class list holds them) or teacher_features= "
                "with teacher_classnames= (to wrap / from_pretrained, or set_teacher_features)")
        self.rows = torch.tensor([position[c] for c in classnames], device=self.teacher_features.device)

    def set_teacher_features(self, features: Tensor, classnames: Sequence[str]) -> None:
        """Replace the stored teacher features (K, E_t) and their class names (then call the wrapper's
        ``set_classnames`` to bind the class list again)."""
        feats = check_teacher_features(features, classnames).to(self.teacher_features.device)
        if feats.shape[1] != self.projector.out_dim:
            raise ShapeError(f"teacher features of width {feats.shape[1]} do not fit this student's projector, "
                             f"which maps into the teacher's {self.projector.out_dim}-d space")
        self.teacher_classnames = list(classnames)
        if self.features_per_route:
            self.teacher_features = nn.Parameter(feats, requires_grad=False)
        else:
            self.teacher_features = feats
        self.rows = torch.arange(len(self.teacher_classnames), device=feats.device)

    # ------------------------------------------------------------------ prompts
    def forward(self) -> Prompts:
        head, _ = self.projector.function()
        return Prompts(visual=self.visual, visual_deep=self.visual_deep, image_head=head,
                       class_features=self.teacher_features.index_select(0, self.rows))

    def options(self) -> StudentSection:
        return StudentSection(n_visual_ctx=self.n_visual_ctx, visual_depth=self.visual_depth,
                              teacher_width=self.projector.out_dim, init_std=self.init_std,
                              teacher_classnames=list(self.teacher_classnames),
                              features_per_route=self.features_per_route)

    @classmethod
    def build(cls, backend, options: StudentOptions, features: Tensor, classnames: Sequence[str],
              features_per_route: bool = False) -> "StudentPrompt":
        """For a backend: the visual depth defaults to the released 9 capped by the visual tower; the projector
        maps the backend's image embedding (``embed_dim``) to the teacher features' width."""
        depth = options.visual_depth
        if options.n_visual_ctx:
            backend.check_visual_prompts()
            if not backend.vision_width:
                raise ConfigError("n_visual_ctx > 0 needs a ViT visual tower; use n_visual_ctx=0 (projector only)")
            layers = backend.vision_layers
            if depth is None:
                depth = min(RELEASED_VISUAL_DEPTH, layers)
            elif depth > layers:
                raise ConfigError(f"visual_depth={depth} is more than the visual tower's {layers} blocks")
        return cls(backend.vision_width, backend.embed_dim, features, classnames, n_visual_ctx=options.n_visual_ctx,
                   visual_depth=depth or 1, init_std=options.init_std, features_per_route=features_per_route)

    @classmethod
    def from_config(cls, backend, tokenizer, config: StudentSection, n_classes: int) -> "StudentPrompt":
        if config.teacher_classnames is None:
            raise ConfigError("this PromptKD student adapter stores no teacher text features (a converted released "
                              "student file): pass teacher= (the teacher PromptedCLIP) or teacher_features= with "
                              "teacher_classnames= to from_pretrained")
        features = torch.zeros(len(config.teacher_classnames), config.teacher_width)
        features[:, 0] = 1.0  # placeholder rows (unit norm) until the adapter's tensors are loaded
        options = StudentOptions(n_visual_ctx=config.n_visual_ctx, visual_depth=config.visual_depth or None,
                                 init_std=config.init_std)
        return cls.build(backend, options, features, config.teacher_classnames, config.features_per_route)


def check_teacher_features(features: Tensor, classnames: Sequence[str]) -> Tensor:
    """(K, E) finite float features for K distinct names -> L2-normalised fp32 rows."""
    names = check_classnames(classnames, "teacher_classnames")
    if not isinstance(features, Tensor) or features.dim() != 2 or not features.is_floating_point():
        raise ShapeError(f"teacher_features must be a (K, E) float tensor, got "
                         f"{tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__}")
    if features.shape[0] != len(names):
        raise ShapeError(f"teacher_features has {features.shape[0]} rows but {len(names)} teacher_classnames were "
                         "given: one name per row, in order")
    if not torch.isfinite(features).all():
        raise ShapeError("teacher_features contains NaN or inf values")
    return F.normalize(features.detach().float(), dim=-1).clone()
