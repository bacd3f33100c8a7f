"""DPC's Dynamic Hard Negative Optimizer: hard-negative sampling + symmetric InfoNCE.

For every training image the frozen backbone scores the base classes; its most confusable
wrong classes (not already in the batch) become negatives, one training image of each is
fetched from the user's dataset, and the enlarged batch of N images with labels y_hat is
trained with a symmetric InfoNCE over S = scale * I T[y_hat]^T (N x N) at the frozen CLIP
scale (no margin, no queue, no extra temperature).

Differences from the released code (both fixed here, ``legacy=True`` restores them):

* Off-by-one: the original takes the top-K classes *including* the ground truth and then
  drops it, so a sample gets K-1 candidates when the ground truth ranks in the top-K and K
  otherwise (a length check that should have capped this tests an empty list). Here the
  ground truth is masked first, so every sample gets the K hardest wrong classes as candidates.
* Fallback: when fewer than ``min_negatives`` (2) survive the non-repeat filter, the original
  makes C-2 blind draws of ``randint(1, C-2)``: class 0 (and class C-1) can never be drawn and
  a sample can end with no negative at all although unused classes exist. Here the missing
  negatives are drawn without replacement from all unused classes (class 0 included), so a
  sample gets ``min(min_negatives, #unused)`` of them.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, ShapeError, check_finite

__all__ = ["symmetric_info_nce", "symmetric_info_nce_from_logits", "build_class_index", "HardNegativeBatch",
           "HardNegativeOptimizer", "gather_rows", "rank_sizes"]


def symmetric_info_nce_from_logits(logits: Tensor) -> Tensor:
    """½ [CE(S, arange N) + CE(Sᵀ, arange N)] for an (N, N) similarity matrix S (already scaled)."""
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1]:
        raise ShapeError(f"symmetric InfoNCE needs a square (N, N) matrix, got {tuple(logits.shape)}")
    check_finite("InfoNCE logits", logits)
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def symmetric_info_nce(image_feats: Tensor, text_feats: Tensor, scale: float | Tensor) -> Tensor:
    """Symmetric InfoNCE of paired rows: image_feats (N, E) and text_feats (N, E), both
    L2-normalised (not re-normalised here); S = scale * image_feats @ text_feats.T."""
    if image_feats.shape != text_feats.shape or image_feats.dim() != 2:
        raise ShapeError(f"image_feats {tuple(image_feats.shape)} and text_feats {tuple(text_feats.shape)} "
                         "must both be (N, E)")
    check_finite("image_feats", image_feats)
    check_finite("text_feats", text_feats)
    return symmetric_info_nce_from_logits(scale * image_feats @ text_feats.t())


def build_class_index(labels: Sequence[int] | Tensor) -> dict[int, list[int]]:
    """``class -> [dataset indices]`` from the per-item labels of a dataset."""
    index: dict[int, list[int]] = {}
    values = labels.tolist() if isinstance(labels, Tensor) else list(labels)
    for i, y in enumerate(values):
        index.setdefault(int(y), []).append(i)
    return index


def _dataset_labels(dataset: Any) -> list[int]:
    for attr in ("targets", "labels", "label"):
        value = getattr(dataset, attr, None)
        if value is not None and not callable(value):
            return [int(v) for v in (value.tolist() if isinstance(value, Tensor) else value)]
    return [int(_item_label(dataset[i])) for i in range(len(dataset))]  # loads every item once


def _item_label(item: Any) -> int:
    if isinstance(item, Mapping):
        for key in ("label", "labels", "target"):
            if key in item:
                return int(item[key])
    if isinstance(item, (tuple, list)) and len(item) >= 2:
        return int(item[1])
    raise ConfigError("cannot read a label from dataset items: pass labels=[...] or class_index={...}")


def default_get_image(item: Any) -> Tensor:
    """The image of a dataset item: ``item[0]`` of a tuple, ``item['image'|'pixel_values']`` of a dict."""
    if isinstance(item, Tensor):
        return item
    if isinstance(item, Mapping):
        for key in ("image", "pixel_values", "img"):
            if key in item:
                return item[key]
    if isinstance(item, (tuple, list)) and item and isinstance(item[0], Tensor):
        return item[0]
    raise ConfigError("cannot find the image tensor in a dataset item: pass get_image=callable(item) -> Tensor")


def _dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


def rank_sizes(n: int, device: torch.device | str = "cpu") -> list[int]:
    """Every rank's ``n`` (rank order); ``[n]`` without an initialised process group."""
    if not _dist_ready():
        return [n]
    import torch.distributed as dist

    t = torch.tensor([n], device=device)
    sizes = [torch.zeros_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, t)
    return [int(s) for s in sizes]


def gather_rows(x: Tensor, *, with_grad: bool = True, sizes: list[int] | None = None) -> Tensor:
    """Concatenate the rows of ``x`` (N_r, ...) from every rank (N_r may differ), rank order.
    Gradients flow back to each rank's rows (``torch.distributed.nn.functional.all_gather``).
    ``sizes``: every rank's N_r when already known (``rank_sizes``), saving one collective.
    Without an initialised process group (or with one rank) ``x`` is returned as is."""
    if not _dist_ready():
        return x
    import torch.distributed as dist

    if sizes is None:
        sizes = rank_sizes(x.shape[0], x.device)
    pad = max(sizes) - x.shape[0]
    padded = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))]) if pad else x
    if with_grad:
        from torch.distributed.nn.functional import all_gather

        parts = all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def _unwrap_parallel(model: Any) -> Any:
    """The module inside ``DistributedDataParallel`` / ``DataParallel``, else ``model``."""
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


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
    legacy:        reproduce the released sampler (see the module docstring).
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
            class_index = build_class_index(labels if labels is not None else _dataset_labels(dataset))
        self.class_index = {int(k): list(v) for k, v in class_index.items() if len(v)}
        inner = _unwrap_parallel(model)
        if scorer is None:
            scorer = getattr(inner, "backbone_logits", None)
            if scorer is None:
                raise ConfigError(f"{type(model).__name__} has no backbone_logits(): pass scorer=callable(images) "
                                  "-> (B, C) logits of the frozen stage-1 model")
        self.scorer = scorer
        if classes is None:
            classes = getattr(inner, "base_indices", None)
        self.classes = None if classes is None else sorted(int(c) for c in classes)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(seed)
        self._takes_classes = "classes" in inspect.signature(inner.forward).parameters

    # ------------------------------------------------------------------ sampling
    def candidate_classes(self, n_columns: int) -> list[int]:
        classes = range(n_columns) if self.classes is None else self.classes
        return [c for c in classes if c < n_columns]

    def sample_negatives(self, scores: Tensor, labels: Tensor) -> list[list[int]]:
        """Negative classes per sample from (B, C) backbone logits or probabilities (only the order
        matters) and (B,) ground-truth labels. The non-repeat filter runs over the whole batch."""
        if scores.dim() != 2 or labels.dim() != 1 or scores.shape[0] != labels.shape[0]:
            raise ShapeError(f"scores (B, C) and labels (B,) do not match: {tuple(scores.shape)}, "
                             f"{tuple(labels.shape)}")
        n_cols = scores.shape[1]
        cands = self.candidate_classes(n_cols)
        if self.top_k > len(cands) - 1:
            raise ConfigError(
                f"top_k={self.top_k} is larger than the {len(cands) - 1} wrong classes available among "
                f"{len(cands)} candidate classes; set top_k <= {max(1, len(cands) - 1)}")
        allowed = torch.zeros(n_cols, dtype=torch.bool)
        allowed[cands] = True
        if not self.legacy:  # classes without training images cannot be negatives
            for c in cands:
                if c not in self.class_index:
                    allowed[c] = False
        # log-probabilities over the allowed classes (same order as probabilities, no underflow ties)
        logp = scores.detach().float().cpu().masked_fill(~allowed, float("-inf")).log_softmax(-1)
        gts = [int(y) for y in labels.tolist()]
        used = set(gts)  # ground truths of the batch, then every accepted negative
        out = []
        for i, gt in enumerate(gts):
            row, valid = logp[i].clone(), allowed.clone()
            if self.legacy:
                k = min(self.top_k, int(valid.sum()))
                top = [c for c in row.topk(k).indices.tolist() if c != gt]
            else:
                if 0 <= gt < n_cols:
                    row[gt], valid[gt] = float("-inf"), False
                k = min(self.top_k, int(valid.sum()))
                top = row.topk(k).indices.tolist() if k else []
            kept = []
            for c in top:
                if c not in used:
                    kept.append(c)
                    used.add(c)
            if len(kept) < self.min_negatives:
                kept += self._fallback(len(kept), used, allowed, n_cols)
            out.append(kept)
        return out

    def _fallback(self, have: int, used: set[int], allowed: Tensor, n_cols: int) -> list[int]:
        need = self.min_negatives - have
        extra: list[int] = []
        if self.legacy:  # C-2 draws of randint(1, C-2), as released (class 0 and C-1 never drawn)
            c = n_cols
            if c - 2 < 1:
                return extra
            for _ in range(c - 2):
                r = int(torch.randint(1, c - 1, (1,), generator=self.generator))
                if r not in used:
                    extra.append(r)
                    used.add(r)
                    if len(extra) >= need:
                        break
            return extra
        pool = [c for c in range(n_cols) if bool(allowed[c]) and c not in used]
        if pool:
            for j in torch.randperm(len(pool), generator=self.generator)[:need].tolist():
                extra.append(pool[j])
                used.add(pool[j])
        return extra

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
        labels = labels.long()
        with torch.no_grad():
            scores = self.scorer(images)
        start, all_scores, all_labels = 0, scores, labels
        if self.gather and _dist_ready():
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
