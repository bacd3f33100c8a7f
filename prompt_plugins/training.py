"""Small training / evaluation helpers shared by the demo and the ``train``/``eval`` commands: a head over
precomputed features, a seeded mini-batch loop, evaluation mode and batched feature extraction."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError


def seeded(seed: int, fn: Callable[[], Any]) -> Any:
    """``fn()`` under ``torch.manual_seed(seed)`` (its parameter inits, dropout masks), the caller's global RNG
    state left untouched (the CPU's and, where CUDA is available, every GPU's: ``manual_seed`` reseeds both)."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return fn()


class FeatureModel(nn.Module):
    """Logits of a text-side adapter over precomputed frozen image features.

    ``forward(features (B, E), classes=None) -> (B, C')`` and, for a ``DualPromptWrapper``,
    ``backbone_logits`` (the frozen prompt P), so ``HardNegativeOptimizer`` can take it as its
    model with a dataset of (feature, label) pairs. P does not change during DPC's stage 2, so its
    text features are computed once per class selection (and class list) and reused at every step
    (``clear_cache()`` after changing P)."""

    def __init__(self, adapter: nn.Module, scale: float):
        super().__init__()
        self.adapter, self.scale = adapter, scale
        self._backbone_text: dict[Any, Tensor] = {}

    def forward(self, features: Tensor, classes: Any = None) -> Tensor:
        return self.scale * features @ self.adapter.encode_text(classes).t()

    @torch.no_grad()
    def backbone_logits(self, features: Tensor, classes: Any = None) -> Tensor:
        """The frozen backbone's logits, computed with dropout off (the hard-negative sampler's scores)."""
        key = (_selection_key(classes), tuple(getattr(self.adapter, "classnames", None) or ()))
        text = self._backbone_text.get(key)
        if text is None:
            with eval_mode(self.adapter):
                text = self._backbone_text[key] = self.adapter.encode_text(classes, route="backbone")
        return self.scale * features @ text.t()

    def clear_cache(self) -> None:
        """Forget the backbone's text features (after changing the backbone prompt P)."""
        self._backbone_text.clear()

    @property
    def base_indices(self) -> list[int] | None:
        return getattr(self.adapter, "base_indices", None)


def _selection_key(classes: Any) -> Any:
    """A hashable key for a class selection (None, indices as a tensor or sequence, or names)."""
    if classes is None or isinstance(classes, (str, int)):
        return classes
    return tuple(classes.flatten().tolist()) if isinstance(classes, Tensor) else tuple(classes)


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Evaluate with dropout off (GA2's coupler has Dropout(0.5)), restoring the previous mode."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@torch.no_grad()
def encode_images(prompted, x: Tensor, *, batch: int = 256, device: str = "cpu") -> Tensor:
    """(N, ...) images or videos -> (N, E) normalised features from the prompted model (no grad)."""
    with eval_mode(prompted):
        return torch.cat([prompted.encode_image(x[i:i + batch].to(device)) for i in range(0, len(x), batch)])


def fit(logits_fn: Callable[[Tensor], Tensor], params: Iterable[nn.Parameter], targets: Tensor, *, steps: int,
        lr: float, batch: int, seed: int, desc: str = "training", progress: bool = True,
        extra_loss: Callable[[Tensor], Tensor] | None = None) -> float:
    """Minimise cross-entropy of ``logits_fn(indices) -> (b, C)`` against ``targets[indices]``
    (plus ``extra_loss(indices)``); see :func:`fit_loss`. Returns the final loss."""
    def loss_fn(idx: Tensor) -> Tensor:
        logits = logits_fn(idx)
        loss = F.cross_entropy(logits, targets[idx].to(logits.device))
        return loss if extra_loss is None else loss + extra_loss(idx)
    return fit_loss(loss_fn, params, len(targets), steps=steps, lr=lr, batch=batch, seed=seed, desc=desc,
                    progress=progress)


def fit_loss(loss_fn: Callable[[Tensor], Tensor], params: Iterable[nn.Parameter], n: int, *, steps: int,
             lr: float, batch: int, seed: int, desc: str = "training", progress: bool = True) -> float:
    """Minimise ``loss_fn(indices)`` over mini-batches of ``range(n)`` (reshuffled every epoch with a
    seeded generator) with AdamW + cosine decay. Returns the final loss."""
    from tqdm.auto import tqdm

    params = list(params)
    if not params:
        raise ValueError("nothing to train: the adapter has no trainable parameters")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    g = torch.Generator().manual_seed(int(seed))
    loss = torch.tensor(float("nan"))
    order, pos = torch.randperm(n, generator=g), 0
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False, unit="step")
    for _ in bar:
        if pos + min(batch, n) > n:
            order, pos = torch.randperm(n, generator=g), 0
        idx = order[pos:pos + batch]
        pos += len(idx)
        loss = loss_fn(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return float(loss.item())


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def fit_recipe(loss_fn: Callable[[Tensor, int], Tensor], params: Iterable[nn.Parameter], n: int, recipe: Any, *,
               seed: int, desc: str = "training", progress: bool = True, stop_epoch: int | None = None) -> float:
    """Minimise ``loss_fn(indices, epoch)`` for ``recipe.epochs`` epochs of mini-batches of ``range(n)`` (a new
    seeded order every epoch; a last partial batch is dropped when ``n >= batch``, as the released loaders
    do), with the recipe's optimiser and per-step schedule (``prompt_plugins.recipes``). ``stop_epoch``: stop
    after that many epochs of the schedule (a mid-schedule checkpoint). Returns the last loss."""
    from tqdm.auto import tqdm

    params = list(params)
    batch = min(recipe.batch_size, n)
    steps = n // batch
    opt = recipe.build_optimizer(params)
    sched = recipe.build_scheduler(opt, steps)
    g = torch.Generator().manual_seed(int(seed))
    loss = torch.tensor(float("nan"))
    epochs = recipe.epochs if stop_epoch is None else stop_epoch
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= recipe.epochs:
        raise ConfigError(f"stop_epoch={stop_epoch!r}: must be an int in [1, {recipe.epochs}] (the recipe's epochs)")
    bar = tqdm(total=epochs * steps, desc=desc, disable=not progress, leave=False, unit="step")
    for epoch in range(epochs):
        order = torch.randperm(n, generator=g)
        for s in range(steps):
            loss = loss_fn(order[s * batch:(s + 1) * batch], epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    return float(loss.item())
