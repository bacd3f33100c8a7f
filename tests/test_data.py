"""The data layer on tiny data sets written in each published layout: class halves, item counts,
determinism per seed, Dassl's few-shot draws, transforms and streaming."""
import random
from collections import defaultdict

import pytest
import torch

pytest.importorskip("PIL")

import data_layouts as layouts  # noqa: E402
from prompt_plugins.data import (  # noqa: E402
    EpochBatches, ImageTransform, Item, VideoTransform, build_task, dataset_for, fewshot_items, fewshot_val,
    make_loader, read_splits, eval_frame_indices, train_frame_indices,
)
from prompt_plugins.errors import ConfigError  # noqa: E402


def dassl_fewshot(items, shots, seed):
    """Dassl's generate_fewshot_dataset after train.py's set_random_seed, run on the global ``random``."""
    random.seed(seed)
    tracker = defaultdict(list)
    for item in items:
        tracker[item.label].append(item)
    out = []
    for _, group in tracker.items():
        out.extend(random.sample(group, shots) if len(group) >= shots else group)
    return out


def test_fewshot_reproduces_dassl_draws():
    items = [Item(f"{i}.png", label) for i, label in enumerate([3, 1, 3, 0, 1, 2, 3, 0, 1, 2, 2, 0] * 5)]
    state = random.getstate()
    for seed in (1, 2, 3):
        for shots in (1, 2, 4, 16):
            assert fewshot_items(items, shots, seed) == dassl_fewshot(items, shots, seed)
    random.setstate(state)
    assert fewshot_items(items, 2, 1) != fewshot_items(items, 2, 2)
    val = fewshot_val(items, items[:20], 16, 1)
    assert len(val) == sum(min(4, n) for n in (5, 5, 5, 5))


def test_coop_json_layout_halves_counts_and_seeds(tmp_path):
    root = layouts.coop_json(tmp_path, n_classes=5, train=3, val=1, test=2)
    splits = read_splits("oxford_pets", root)
    assert splits.name == "OxfordPets" and splits.kind == "image"
    assert splits.classnames == [n for n, _ in layouts.CLASSES[:5]]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (15, 5, 10)
    task = build_task(splits, shots=2, seed=1)
    assert task.base == [0, 1, 2] and task.new == [3, 4]  # ceil(5/2) base
    assert len(task.train) == 6 and {it.label for it in task.train} == {0, 1, 2}
    assert len(task.test_base) == 6 and len(task.test_new) == 4
    again = build_task(read_splits("OxfordPets", root), shots=2, seed=1)
    assert again.train == task.train  # deterministic per seed
    assert build_task(splits, shots=2, seed=2).train != task.train
    # base shots are the all-class draw restricted to base labels (Dassl draws before subsampling)
    assert task.train == [it for it in dassl_fewshot(splits.train, 2, 1) if it.label in task.base]
    record = task.record()
    assert record["base_classes"] == ["red circle", "blue square", "green bar"] and record["seed"] == 1


def test_every_coop_dataset_reads_its_layout(tmp_path):
    from prompt_plugins.data import COOP_DATASETS

    assert len(COOP_DATASETS) == 11
    for key, layout in COOP_DATASETS.items():
        if layout.layout != "json":
            continue
        root = layouts.coop_json(tmp_path / key, n_classes=2, train=1, val=0, test=1,
                                 dataset_dir=layout.dataset_dir, image_dir=layout.image_dir,
                                 split_file=layout.split_file)
        splits = read_splits(key, root)
        assert splits.name == layout.name and len(splits.train) == 2


def test_imagenet_layout(tmp_path):
    splits = read_splits("imagenet", layouts.imagenet(tmp_path, n_classes=4, train=3, test=2))
    assert splits.classnames == [n for n, _ in layouts.CLASSES[:4]]
    assert len(splits.train) == 12 and len(splits.test) == 8 and splits.val == []
    task = build_task(splits, shots=2, seed=3)
    assert task.base_names == ["red circle", "blue square"] and len(task.train) == 4


def test_fgvc_layout(tmp_path):
    splits = read_splits("fgvc_aircraft", layouts.fgvc(tmp_path, n_classes=4))
    assert splits.classnames == ["707-300", "717-300", "727-300", "737-300"]
    assert len(splits.train) == len(splits.val) == len(splits.test) == 8


def test_vifi_split_files_and_csvs(tmp_path):
    videos, top = layouts.vifi(tmp_path / "videos", tmp_path / "vifi", base=3, novel=2, shots=2, test=2)
    splits = read_splits("hmdb51", videos, seed=2, splits_dir=top)
    assert splits.kind == "video" and splits.base == [0, 1, 2]
    names = [n for n, _ in layouts.CLASSES]
    assert splits.classnames == names[2:5] + names[0:2]  # base CSV first, then novel
    task = build_task(splits, shots=2, seed=2)
    assert task.base_names == names[2:5] and task.new_names == names[0:2]
    assert len(task.train) == 6 and all("s2_" in it.path for it in task.train)
    assert len(task.test_base) == 6 and len(task.test_new) == 4 and {it.label for it in task.test_new} == {3, 4}
    with pytest.raises(ConfigError, match="--shots 2"):
        build_task(splits, shots=16, seed=2)
    with pytest.raises(ConfigError, match="seeds \\[1, 2, 3\\]"):
        read_splits("hmdb51", videos, seed=4, splits_dir=top)
    with pytest.raises(ConfigError, match="--splits"):
        read_splits("hmdb51", videos, seed=1)


@pytest.mark.parametrize("key", ["k400", "hmdb51", "ucf101_video", "ssv2"])
def test_every_vifi_dataset_reads_its_layout(tmp_path, key):
    from prompt_plugins.data import VIFI_DATASETS

    assert sorted(VIFI_DATASETS) == sorted(["k400", "hmdb51", "ucf101_video", "ssv2"])
    videos, top = layouts.vifi(tmp_path / "videos", tmp_path / "vifi", base=2, novel=2, shots=1, test=1,
                               frames=2, dataset=key)
    splits = read_splits(key, videos, seed=3, splits_dir=top)
    assert splits.name == VIFI_DATASETS[key].name and splits.base == [0, 1] and len(splits.classnames) == 4
    assert (len(splits.train), len(splits.test)) == (2, 4)


@pytest.mark.parametrize("case, match", [
    ("no_root", "--root must be the folder holding oxford_pets/"),
    ("no_split", "download split_zhou_OxfordPets.json"),
    ("bad_json", "not valid JSON"),
    ("bad_entry", "is not a \\[relpath, label, classname\\] triple"),
    ("unknown", "is unknown; use one of"),
])
def test_layout_errors_name_the_fix(tmp_path, case, match):
    name = "oxford_pets"
    if case != "no_root":
        layouts.coop_json(tmp_path)
    split = tmp_path / "oxford_pets" / "split_zhou_OxfordPets.json"
    if case == "no_split":
        split.unlink()
    elif case == "bad_json":
        split.write_text("{")
    elif case == "bad_entry":
        split.write_text('{"train": [["a.png", "0", "x"]], "test": []}')
    elif case == "unknown":
        name = "cifar10"
    with pytest.raises(ConfigError, match=match):
        read_splits(name, tmp_path)


def test_transforms_shapes_determinism_and_flip():
    from PIL import Image

    img = Image.new("RGB", (50, 40), (10, 20, 30))
    img.putpixel((0, 0), (255, 255, 255))
    test = ImageTransform(32, train=False)(img)
    assert test.shape == (3, 32, 32)
    train = ImageTransform(32, train=True)
    a, b = train(img, random.Random(5)), train(img, random.Random(5))
    assert torch.equal(a, b) and a.shape == (3, 32, 32)
    assert any(not torch.equal(train(img, random.Random(s)), a) for s in range(6, 12))


def test_frame_sampling_follows_vifi():
    assert eval_frame_indices(32, 8) == [2, 6, 10, 14, 18, 22, 26, 30]  # segment centres
    idx = train_frame_indices(32, 8, random.Random(0))
    assert all(4 * i <= v < 4 * (i + 1) for i, v in enumerate(idx))  # one per segment
    assert train_frame_indices(3, 8, random.Random(0)) == [0, 0, 1, 1, 2, 2, 2, 0]
    assert len(train_frame_indices(10, 8, random.Random(1))) == 8


def test_streaming_loader_is_deterministic_for_any_worker_count(tmp_path):
    splits = read_splits("oxford_pets", layouts.coop_json(tmp_path, n_classes=4, train=4))
    task = build_task(splits, shots=4, seed=1)
    ds = dataset_for(task, task.train, 32, None, train=True, seed=1)
    runs = []
    for workers in (0, 2):
        batches = EpochBatches(len(ds), 3, seed=1, epoch=1)
        runs.append([(x.clone(), y.clone()) for x, y in make_loader(ds, batches, workers=workers,
                                                                       device=torch.device("cpu"))])
    assert len(runs[0]) == 8 // 3
    for (xa, ya), (xb, yb) in zip(*runs):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    other = list(make_loader(ds, EpochBatches(len(ds), 3, seed=1, epoch=2), workers=0, device=torch.device("cpu")))
    assert not torch.equal(other[0][0], runs[0][0][0])


def test_frame_folders_and_decoded_video(tmp_path):
    videos, top = layouts.vifi(tmp_path / "videos", tmp_path / "vifi", frames=5)
    task = build_task(read_splits("hmdb51", videos, seed=1, splits_dir=top), shots=2, seed=1)
    clip, label = dataset_for(task, task.test_new, 32, 3, train=False, seed=1)[0]
    assert clip.shape == (3, 3, 32, 32) and label == 3
    assert dataset_for(task, task.train, 32, 4, train=True, seed=1)[0][0].shape == (4, 3, 32, 32)
    pytest.importorskip("av")
    path = tmp_path / "v.mp4"
    layouts.write_video(path, (200, 40, 40), frames=6)
    decoded = VideoTransform(32, 3, train=False)(str(path))
    assert decoded.shape == (3, 3, 32, 32)
    assert decoded[0].mean() > decoded[-1].mean()  # frames darken over time: real frames, in order
