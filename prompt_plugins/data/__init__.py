"""Real data sets in their published layouts, for the base-to-new protocol of the papers.

``read_splits(name, root, ...)`` reads CoOp's 11 image data sets (``coop.py``), ViFi-CLIP's video splits
(``vifi.py``) or a generic ``ROOT/{train,test}/<class>/`` folder (``folder.py``); ``build_task(splits, shots,
seed)`` draws the few-shot base training set as Dassl does (``fewshot.py``) and cuts base / new (``task.py``).
``ItemDataset`` + ``make_loader`` stream items through the recipes' transforms (``transforms.py``,
``video.py``; ``loader.py``). PIL is needed to read images, PyAV (the ``video`` extra) only to decode video
files; torchvision is never imported.
"""
from .coop import COOP_DATASETS, CoopLayout, read_coop
from .fewshot import base_new_labels, fewshot_items, fewshot_val
from .folder import read_image_folder
from .loader import EpochBatches, ItemDataset, make_loader, mix_seed
from .splits import IMAGE_EXTS, VIDEO_EXTS, Item, Splits, read_classnames
from .task import DATASET_NAMES, FOLDER, Task, build_task, read_splits
from .transforms import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ImageTransform
from .video import VideoTransform, eval_frame_indices, train_frame_indices
from .vifi import VIFI_DATASETS, VifiLayout, read_vifi

__all__ = [
    "COOP_DATASETS", "CoopLayout", "read_coop", "VIFI_DATASETS", "VifiLayout", "read_vifi", "read_image_folder",
    "base_new_labels", "fewshot_items", "fewshot_val", "Item", "Splits", "read_classnames", "IMAGE_EXTS",
    "VIDEO_EXTS", "DATASET_NAMES", "FOLDER", "Task", "build_task", "read_splits", "ImageTransform",
    "VideoTransform", "train_frame_indices", "eval_frame_indices", "CLIP_MEAN", "CLIP_STD", "IMAGENET_MEAN", "IMAGENET_STD",
    "EpochBatches", "ItemDataset", "make_loader", "mix_seed",
]


def transforms_for(task: Task, size: int, frames: int | None, train: bool):
    """The transform of ``task``'s items: CoOp's image transforms (CLIP statistics) for images, ViFi's frame
    sampling and normalisation for videos (``frames`` per clip)."""
    if task.kind == "video":
        if frames is None:
            from ..errors import ConfigError

            raise ConfigError(f"{task.dataset} holds videos: pass --frames T (ViFi-CLIP samples 32)")
        return VideoTransform(size, frames, train)
    return ImageTransform(size, train)


def dataset_for(task: Task, items: list[Item], size: int, frames: int | None, *, train: bool, seed: int,
                label_map: dict[int, int] | None = None) -> ItemDataset:
    """A streaming dataset of ``items`` with the task's transform."""
    return ItemDataset(items, transforms_for(task, size, frames, train), seed=seed, video=task.kind == "video",
                       label_map=label_map)
