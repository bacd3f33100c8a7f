"""A procedural base-to-new world: coloured shapes (images) and moving shapes (videos) with
compositional class names, a tiny OpenAI CLIP pretrained on it, and a shifted downstream split.

Needs numpy and the ``clip`` package (the ``demo`` extra); ``import prompt_plugins`` never imports it.
"""
from .classes import COLOURS, MOTIONS, SHAPES, World
from .config import PRESETS, WorldConfig, preset
from .augment import augment
from .data import Split, anchor_clips, downstream_split, pretrain_batch, source_split
from .cache import cache_dir, read_cached, write_cached
from .pretrain import build_clip, load_or_pretrain, pretrain

__all__ = ["build_clip", "COLOURS", "SHAPES", "MOTIONS", "World", "WorldConfig", "PRESETS", "preset", "Split",
           "downstream_split", "source_split", "anchor_clips", "augment", "pretrain_batch", "pretrain",
           "load_or_pretrain", "cache_dir", "read_cached", "write_cached"]
