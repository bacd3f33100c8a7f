"""Streaming: a ``torch.utils.data.Dataset`` that decodes and transforms one item at a time, and the loaders
``train``/``eval`` use (workers, pinned memory on CUDA). Nothing is held in RAM but the item list.

Reproducibility: the training order of an epoch is a permutation drawn from (seed, epoch), and the random
augmentation of item i in epoch e from (seed, e, i), so a run gives the same batches for any number of workers
and after ``--resume``."""
from __future__ import annotations

import random
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from .splits import Item

_MIX = 0x9E3779B97F4A7C15


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and Python versions)."""
    h = 0
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * _MIX + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h & 0x7FFFFFFFFFFFFFFF


class ItemDataset(Dataset):
    """``dataset[i] -> (tensor, label)``: item i read by ``transform(path, rng)`` (an ``ImageTransform`` after
    opening the image, or a ``VideoTransform``). ``set_epoch(e)`` selects the augmentation draws."""

    def __init__(self, items: Sequence[Item], transform: Callable[..., Tensor], *, seed: int = 0,
                 video: bool = False, label_map: dict[int, int] | None = None):
        self.items, self.transform, self.seed, self.video = list(items), transform, int(seed), video
        self.label_map = label_map
        self.epoch = 0

    @property
    def targets(self) -> list[int]:
        """Per-item labels (what ``HardNegativeOptimizer`` indexes classes by)."""
        return [self._label(it) for it in self.items]

    def _label(self, item: Item) -> int:
        return item.label if self.label_map is None else self.label_map[item.label]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        from .transforms import open_image

        item = self.items[i]
        rng = random.Random(mix_seed(self.seed, self.epoch, i))
        source: Any = item.path if self.video else open_image(item.path)
        return self.transform(source, rng), self._label(item)


class EpochBatches(Sampler[list[int]]):
    """The batches of one epoch: a permutation from (seed, epoch) (or the item order when not shuffling),
    cut into ``batch`` items; a last partial batch is dropped when ``drop_last`` (Dassl drops it when the
    data set holds at least one batch)."""

    def __init__(self, n: int, batch: int, *, seed: int = 0, epoch: int = 0, shuffle: bool = True,
                 drop_last: bool = True):
        self.n, self.batch, self.seed, self.epoch = n, batch, seed, epoch
        self.shuffle, self.drop_last = shuffle, drop_last

    def order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, 0xE90C))
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        order = self.order()
        stop = len(self) * self.batch if self.drop_last else self.n
        for start in range(0, stop, self.batch):
            yield order[start:start + self.batch]

    def __len__(self) -> int:
        return self.n // self.batch if self.drop_last else -(-self.n // self.batch)


def make_loader(dataset: ItemDataset, batches: EpochBatches, *, workers: int, device: torch.device) -> DataLoader:
    """A ``DataLoader`` over ``batches`` (the dataset's epoch set to the sampler's first)."""
    dataset.set_epoch(batches.epoch)
    generator = torch.Generator().manual_seed(mix_seed(batches.seed, batches.epoch))  # not the global RNG
    return DataLoader(dataset, batch_sampler=batches, num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=False, generator=generator)
