"""DPC's Dynamic Hard Negative Optimizer as a loss module: hard-negative sampling + symmetric InfoNCE.

For every training image the frozen backbone scores the base classes; its most confusable wrong classes
(not already in the batch) become negatives (``sampler.py``), one training image of each is fetched from the
user's dataset, and the enlarged batch of N images with labels y_hat is trained with a symmetric InfoNCE over
S = scale * I T[y_hat]^T (N x N) at the frozen CLIP scale (no margin, no queue, no extra temperature).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ...errors import ClassNameError, ConfigError, ShapeError
from ...losses import dist_ready, gather_rows, rank_sizes, symmetric_info_nce_from_logits, unwrap_parallel
from .dataset_index import as_label, build_class_index, dataset_labels, default_get_image
from .sampler import sample_negatives


@dataclass
class HardNegativeBatch:
    """The enlarged batch: [anchor, its negatives] per sample, N = Σ(1 + k_i) rows."""

    images: Tensor  # (N, ...)
    labels: Tensor  # (N,)
    negatives: list[list[int]]  # per anchor, the negative classes


class HardNegativeOptimizer(nn.Module):
    """DPC's hard-negative objective as a loss module: ``loss = hn(images, labels)``.

    model:         returns (B, C) logits scaled by the frozen CLIP scale; with a ``classes=``
                   keyword (``DualPromptWrapper``, ``PromptedCLIP``) only needed classes are encoded.
    dataset:       the training set; ``dataset[i]`` gives an item holding one image (see ``get_image``).
    labels / class_index: per-item labels or a ready ``class -> indices`` dict (default: read from
                   ``dataset.targets``/``.labels``, else by iterating the dataset once).
    top_k:         K hardest wrong classes considered per image (>= 1; DPC default 8).
    min_negatives: fallback threshold (2 in DPC).
    classes:       class indices that may be negatives (default: ``model.base_indices``, else all).
    scorer:        frozen images -> (B, C) logits (default: ``model.backbone_logits``).
    generator / seed: the ``torch.Generator`` for fallback draws and image picks.
    legacy:        reproduce the released sampler (see ``methods/dpc/sampler.py``).
    gather:        under DDP, behave exactly like one process on the global batch: the backbone
                   scores and labels of every rank are gathered, every rank runs the sampler (its
                   non-repeat filter and random draws) on the whole global batch and keeps its own
                   rows, and the InfoNCE contrasts all rows (``gather_rows``). Every rank's generator
                   must start from the same seed (the default ``seed=0`` does) and every rank must
                   hold the same full ``dataset`` / class index (not a per-rank shard), since negative
                   images are picked from it by the shared draws. ``gather=False``:
                   each rank samples and contrasts within its own batch.

    ``model`` may be wrapped in ``DistributedDataParallel``: ``backbone_logits``/``base_indices``
    and the ``classes=`` keyword are then looked up on ``model.module``.

    Labels are indices into the model's class list, and the dataset's labels must use the same indices.
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Any = None,
        *,
        labels: Sequence[int] | Tensor | None = None,
        class_index: Mapping[int, Sequence[int]] | None = None,
        top_k: int = 8,
        min_negatives: int = 2,
        classes: Sequence[int] | None = None,
        scorer: Callable[[Tensor], Tensor] | None = None,
        get_image: Callable[[Any], Tensor] = default_get_image,
        generator: torch.Generator | None = None,
        seed: int = 0,
        legacy: bool = False,
        gather: bool = True,
    ):
        super().__init__()
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ConfigError(f"top_k={top_k!r} is out of range: it must be an int >= 1")
        if isinstance(min_negatives, bool) or not isinstance(min_negatives, int) or min_negatives < 0:
            raise ConfigError(f"min_negatives={min_negatives!r} must be an int >= 0")
        self.model = model
        self.top_k, self.min_negatives, self.legacy, self.gather = top_k, min_negatives, legacy, gather
        self.dataset, self.get_image = dataset, get_image
        if class_index is None:
            if dataset is None and labels is None:
                raise ConfigError("pass the training dataset (and optionally labels=...) or class_index={...}")
            class_index = build_class_index(labels if labels is not None else dataset_labels(dataset))
        self.class_index = {as_label(k, "class_index"): list(v) for k, v in class_index.items() if len(v)}
        if not self.class_index:
            raise ConfigError("the dataset (or class_index) is empty: hard negatives are images of other classes "
                              "fetched from the training set, so without items there would be none; pass the "
                              "training dataset")
        inner = unwrap_parallel(model)
        if scorer is None:
            scorer = getattr(inner, "backbone_logits", None)
            if scorer is None:
                raise ConfigError(f"{type(model).__name__} has no backbone_logits(): pass scorer=callable(images) "
                                  "-> (B, C) logits of the frozen stage-1 model")
        self.scorer = scorer
        if classes is None:
            classes = getattr(inner, "base_indices", None)
        self.classes = None if classes is None else sorted(int(c) for c in classes)
        self._check_every_class_has_items(inner)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(seed)
        self._takes_classes = "classes" in inspect.signature(inner.forward).parameters

    def _check_every_class_has_items(self, inner: nn.Module) -> None:
        """Every candidate class (the base classes) has a training item: a class without one could never be
        fetched as a negative, and the sampler would drop it without a word."""
        names = getattr(inner, "classnames", None)
        n = len(names) if isinstance(names, list) else None  # indices outside the model: check_label_classes
        lacking = [c for c in self.classes or [] if c not in self.class_index and (n is None or 0 <= c < n)]
        if not lacking:
            return
        shown = [names[c] if isinstance(names, list) and 0 <= c < len(names) else c for c in lacking]
        raise ConfigError(
            f"the dataset holds no item of the candidate classes {shown[:10]}{' ...' if len(shown) > 10 else ''} "
            f"(indices {lacking[:10]}): hard negatives are training images of those classes, so they would never be "
            "negatives. Pass the whole training set (every base class), or classes=[...] without them")

    # ------------------------------------------------------------------ sampling
    def sample_negatives(self, scores: Tensor, labels: Tensor) -> list[list[int]]:
        """Negative classes per sample (see ``methods/dpc/sampler.py``), with this objective's settings."""
        candidates = range(scores.shape[-1]) if self.classes is None else self.classes
        return sample_negatives(scores, labels, candidates=candidates, top_k=self.top_k,
                                min_negatives=self.min_negatives, generator=self.generator, legacy=self.legacy,
                                has_images=self.class_index)

    def pick_index(self, cls: int) -> int:
        """The dataset index of one random training image of class ``cls`` (draws from the generator)."""
        if self.dataset is None:
            raise ConfigError("no dataset to fetch negative images from: pass dataset=...")
        idx = self.class_index.get(cls)
        if not idx:
            raise ConfigError(f"class {cls} has no training image in the class index")
        return idx[int(torch.randint(len(idx), (1,), generator=self.generator))]

    def fetch_image(self, cls: int) -> Tensor:
        """One random training image of class ``cls``."""
        return self.get_image(self.dataset[self.pick_index(cls)])

    def build_batch(self, images: Tensor, labels: Tensor) -> HardNegativeBatch:
        """[anchor_i, negatives of i] for every sample: (N, ...) images and (N,) labels.

        Under DDP (``gather=True``) the negatives are sampled over the global batch; this rank's
        rows are the block of its own anchors, so the rows of all ranks in rank order are the
        rows one process would build from the global batch."""
        labels = self.check_labels(images, labels)
        with torch.no_grad():
            scores = self.scorer(images)
        self.check_label_classes(labels, scores.shape[-1])
        start, all_scores, all_labels = 0, scores, labels
        if self.gather and dist_ready():
            import torch.distributed as dist

            sizes = rank_sizes(len(labels), scores.device)  # collectives on the scores' device (NCCL: GPU)
            start = sum(sizes[:dist.get_rank()])
            all_scores = gather_rows(scores.detach().float(), with_grad=False, sizes=sizes)
            all_labels = gather_rows(labels.to(scores.device), with_grad=False, sizes=sizes)
        negatives = self.sample_negatives(all_scores, all_labels.cpu())
        picks = [[self.pick_index(c) for c in negs] for negs in negatives]  # same draws on every rank
        negatives, picks = negatives[start:start + len(labels)], picks[start:start + len(labels)]
        rows, ys = [], []
        for i, (negs, js) in enumerate(zip(negatives, picks)):
            rows.append(images[i:i + 1])
            ys.append(int(labels[i]))
            for c, j in zip(negs, js):
                img = self.get_image(self.dataset[j])
                if img.shape != images.shape[1:]:
                    raise ShapeError(f"dataset image of class {c} has shape {tuple(img.shape)} but the batch "
                                     f"images are {tuple(images.shape[1:])}: use the same transform")
                rows.append(img.to(images.device, images.dtype)[None])
                ys.append(c)
        return HardNegativeBatch(torch.cat(rows), torch.tensor(ys, device=labels.device), negatives)

    @staticmethod
    def check_labels(images: Tensor, labels: Tensor) -> Tensor:
        """(B,) integer labels for a batch of B images, as a LongTensor; anything else is a ``ShapeError``."""
        if not isinstance(images, Tensor):
            raise ShapeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if not isinstance(labels, Tensor):
            raise ShapeError(f"labels must be a torch.Tensor of class indices, got {type(labels).__name__}; "
                             "use torch.tensor(labels)")
        if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
            raise ShapeError(f"labels must be integer class indices, got a {labels.dtype} tensor "
                             f"{labels.flatten().tolist()[:8]}; .long() would truncate them silently: pass integers")
        if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise ShapeError(f"labels must have shape (B,) = ({images.shape[0]},) for images of shape "
                             f"{tuple(images.shape)}, got {tuple(labels.shape)}")
        return labels.long()

    def check_label_classes(self, labels: Tensor, n_cols: int) -> None:
        """Every label is a class the objective trains on (a base class), and so is every candidate class."""
        if self.classes is not None and self.classes and (self.classes[0] < 0 or self.classes[-1] >= n_cols):
            raise ClassNameError(f"classes={self.classes[:10]} holds indices outside the model's {n_cols} classes")
        allowed = set(range(n_cols)) if self.classes is None else set(self.classes)
        bad = sorted({int(y) for y in labels.tolist()} - allowed)
        if bad:
            what = f"the base classes {sorted(allowed)[:10]}" if self.classes is not None else f"0..{n_cols - 1}"
            raise ClassNameError(
                f"labels {bad[:10]} are not among {what}: the hard-negative objective trains base classes only, "
                "and a new class's label would tune its prompt. Use base-class indices (positions in the class "
                "list), or drop those samples")

    # ------------------------------------------------------------------ loss
    def contrastive_logits(self, images: Tensor, labels: Tensor) -> Tensor:
        """S (N_global, N_global): S[i, j] = scale · img_i · txt_{y_j}, rows gathered over ranks."""
        all_labels = gather_rows(labels, with_grad=False) if self.gather else labels
        uniq, inverse = torch.unique(all_labels, return_inverse=True)
        if self._takes_classes:
            logits = self.model(images, classes=uniq)
        else:  # a model without classes=: all columns, then select
            logits = self.model(images)[:, uniq]
        if self.gather:
            logits = gather_rows(logits)
        return logits[:, inverse]

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        """Scalar loss for a batch of anchors: sample, fetch, symmetric InfoNCE."""
        batch = self.build_batch(images, labels)
        self.last_batch = batch
        return symmetric_info_nce_from_logits(self.contrastive_logits(batch.images, batch.labels))
