"""Bad places to save, bad files to load (issue 15): each failure is a typed error naming the path and the fix,
and leaves the disk as it was; files are written with the umask's mode; a bogus file is refused from its header
before anything reads it whole. Ids start with the kind of behaviour each case had before (``bad_cases``)."""
import json
import os
import pickle
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

import prompt_plugins as pp
from prompt_plugins.checkpoint import CONFIG_NAME, WEIGHTS_NAME, RawAdapter, read_adapter
from prompt_plugins.errors import (
    BackendMismatchWarning, CheckpointError, ClassNameError, ConfigError, UnsafeCheckpointError,
)
from prompt_plugins.importers import convert, read_checkpoint, safe_load
from bad_cases import NAMES, refused, tree
from tiny_models import make_model

BIG = 3 * 2**30  # a sparse 3 GiB file: instant to make, and reading it whole would take seconds and 3 GiB


@pytest.fixture(scope="module")
def saver():
    return make_model("openai")  # another model, so that ``prompted`` and ``saved`` can be used together


@pytest.fixture
def saved(saver, tmp_path):
    wrapper = pp.wrap(saver, NAMES, n_ctx=2)
    pp.save_pretrained(wrapper, tmp_path / "adapter")
    wrapper.eject()
    return tmp_path / "adapter"


def _sparse(path, size=BIG, head=b""):
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def _unhashed(directory):
    cfg = json.loads((directory / CONFIG_NAME).read_text())
    cfg.pop("weights_sha256")
    (directory / CONFIG_NAME).write_text(json.dumps(cfg))


# ---------------------------------------------------------------------------- saves
def _loop(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    return tmp_path / "loop"


def _file(tmp_path):
    (tmp_path / "file").write_text("keep me")
    return tmp_path / "file"


def _weights_dir(tmp_path):
    (tmp_path / "out" / WEIGHTS_NAME).mkdir(parents=True)
    return tmp_path / "out"


def _config_dir(tmp_path):
    (tmp_path / "out" / CONFIG_NAME).mkdir(parents=True)
    return tmp_path / "out"


def _under_file(tmp_path):
    return _file(tmp_path) / "sub"


@pytest.mark.parametrize("target, error, words", [
    pytest.param(_file, CheckpointError, ("is a file, not a directory", "pass a folder path"),
                 id="crash-save-into-a-file"),
    pytest.param(_loop, CheckpointError, ("symbolic link that loops",), id="crash-save-into-a-symlink-loop"),
    pytest.param(_weights_dir, CheckpointError, (f"{WEIGHTS_NAME}' is a directory", "remove or rename it"),
                 id="crash-folder-named-like-the-weights"),
    pytest.param(_config_dir, CheckpointError, (f"{CONFIG_NAME}' is a directory",),
                 id="crash-folder-named-like-the-config"),
    pytest.param(_under_file, CheckpointError, ("cannot create adapter directory",), id="crash-save-under-a-file"),
    pytest.param(lambda tmp_path: None, ConfigError, ("directory must be a folder path", "NoneType"),
                 id="crash-directory-none"),
    pytest.param(lambda tmp_path: 7, ConfigError, ("directory must be a folder path", "int"), id="crash-directory-int"),
    pytest.param(lambda tmp_path: "", ConfigError, ("directory must be a folder path",), id="silent-directory-empty"),
])
def test_bad_save_targets_leave_the_disk_as_it_was(prompted, tmp_path, target, error, words):
    path = target(tmp_path)
    before = tree(tmp_path)
    with refused(error, *words):
        pp.save_pretrained(prompted, path)
    assert tree(tmp_path) == before


def test_new_overwrite_false_keeps_the_existing_adapter(prompted, saved):
    before = tree(saved)
    with refused(CheckpointError, "already holds an adapter", "overwrite=True", "--overwrite"):
        pp.save_pretrained(prompted, saved, overwrite=False)
    assert tree(saved) == before


def test_new_overwrite_false_refuses_half_an_adapter(prompted, saved):
    (saved / WEIGHTS_NAME).unlink()
    before = tree(saved)
    with refused(CheckpointError, "already holds an adapter"):
        pp.save_pretrained(prompted, saved, overwrite=False)
    assert tree(saved) == before


def test_new_overwrite_false_into_an_empty_folder_and_the_default_overwrites(prompted, tmp_path):
    pp.save_pretrained(prompted, tmp_path, overwrite=False)
    with torch.no_grad():
        prompted.prompt.ctx.add_(1.0)
    pp.save_pretrained(prompted, tmp_path)  # the default: replace (existing code saves twice into one folder)
    assert torch.equal(load_file(tmp_path / WEIGHTS_NAME)["prompt.ctx"], prompted.prompt.ctx.detach())


def test_new_overwrite_must_be_a_bool(prompted, tmp_path):
    with refused(ConfigError, "overwrite must be True or False, got 'no'"):
        pp.save_pretrained(prompted, tmp_path, overwrite="no")


def test_silent_nan_prompts_are_not_saved(prompted, saved):
    before = tree(saved)
    with torch.no_grad():
        prompted.prompt.ctx[0, 0] = float("nan")
    with refused(CheckpointError, "'prompt.ctx' contains NaN or inf", "not saved"):
        pp.save_pretrained(prompted, saved)
    assert tree(saved) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_crash_read_only_folder(prompted, tmp_path):
    tmp_path.chmod(0o500)
    try:
        with refused(CheckpointError, "cannot write into", "Permission denied"):
            pp.save_pretrained(prompted, tmp_path)
    finally:
        tmp_path.chmod(0o700)
    assert tree(tmp_path) == {}


@pytest.mark.parametrize("umask", [pytest.param(0o027, id="safety-umask-027"), pytest.param(0o002, id="safety-umask-002")])
def test_saved_files_follow_the_umask(prompted, tmp_path, umask):
    old = os.umask(umask)
    try:
        pp.save_pretrained(prompted, tmp_path / "a")
        with open(tmp_path / "reference", "w"):
            pass
    finally:
        os.umask(old)
    expected = os.stat(tmp_path / "reference").st_mode & 0o777
    assert expected == 0o666 & ~umask
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        assert os.stat(tmp_path / "a" / name).st_mode & 0o777 == expected, name


# ---------------------------------------------------------------------------- loads
def _replace(name, make):
    def apply(directory):
        (directory / name).unlink()
        make(directory / name)
    return apply


LOAD_CASES = [
    pytest.param(lambda d: d / WEIGHTS_NAME, CheckpointError, ("is a file; pass the adapter directory",),
                 id="unclear-weights-file-for-a-directory"),
    pytest.param(lambda d: (d.parent / "loop").symlink_to(d.parent / "loop") or d.parent / "loop", CheckpointError,
                 ("is a symbolic link that loops or points nowhere",), id="unclear-directory-symlink-loop"),
    pytest.param(lambda d: _replace(WEIGHTS_NAME, lambda p: p.mkdir())(d) or d, CheckpointError,
                 (f"{WEIGHTS_NAME} is not a file",), id="unclear-weights-path-is-a-folder"),
    pytest.param(lambda d: None, ConfigError, ("adapter directory must be a folder path", "NoneType"),
                 id="crash-load-directory-none"),
    pytest.param(lambda d: 3, ConfigError, ("adapter directory must be a folder path",), id="crash-load-directory-int"),
]


@pytest.mark.parametrize("where, error, words", LOAD_CASES)
def test_bad_adapter_paths(model, saved, where, error, words):
    with refused(error, *words):
        pp.from_pretrained(model, where(saved))


def _header(n):
    return n.to_bytes(8, "little")


def _json_header(obj):
    data = json.dumps(obj).encode()
    return _header(len(data)) + data


BOGUS_WEIGHTS = [
    pytest.param(lambda p: _sparse(p), ("declare a 0-byte JSON header", "not read further"),
                 id="resource-3gib-sparse-weights"),
    pytest.param(lambda p: _sparse(p, head=_header(2**62)), ("declare a 4611686018427387904-byte JSON header",),
                 id="resource-absurd-header-length"),
    pytest.param(lambda p: _sparse(p, head=_header(20) + b"x" * 20), ("header is not JSON",),
                 id="resource-header-not-json"),
    pytest.param(lambda p: p.write_bytes(_header(2) + b"[]"), ("header is a JSON list",), id="unclear-header-a-list"),
    pytest.param(lambda p: p.write_bytes(_header(30) + b'{"t": {"data_offsets": "x"}}  '),
                 ("tensor 't' has no valid data_offsets",), id="unclear-header-bad-offsets"),
    pytest.param(lambda p: _sparse(p, size=BIG, head=_json_header(
        {"prompt.ctx": {"dtype": "F32", "shape": [2, 64], "data_offsets": [0, 512]}})),
                 ("declares 512 bytes of tensor data but the file holds", "truncated or corrupt"),
                 id="resource-valid-header-then-3gib-of-zeros"),
    pytest.param(lambda p: p.write_bytes(b"\x00" * 5), ("5 bytes, too short",), id="unclear-five-bytes"),
]


@pytest.mark.parametrize("make, words", BOGUS_WEIGHTS)
def test_bogus_weights_are_refused_from_their_header(model, saved, make, words):
    (saved / WEIGHTS_NAME).unlink()
    make(saved / WEIGHTS_NAME)
    with refused(CheckpointError, "is not a valid safetensors file", *words):
        read_adapter(saved)
    with refused(CheckpointError, "is not a valid safetensors file"):
        pp.from_pretrained(model, saved)


def test_resource_huge_config_is_not_read(model, saved):
    _sparse(saved / CONFIG_NAME, size=BIG)
    with refused(CheckpointError, "3,221,225,472 bytes", "not an adapter_config.json; not read"):
        pp.from_pretrained(model, saved)


def test_silent_class_specific_adapter_refuses_other_names_of_the_same_count(model, tmp_path):
    csc = pp.wrap(model, NAMES, n_ctx=2, class_specific=True)
    pp.save_pretrained(csc, tmp_path)
    csc.eject()
    assert json.loads((tmp_path / CONFIG_NAME).read_text())["classnames"] == NAMES  # recorded with the adapter
    for names in (["cat", "dog", "cow"], NAMES[::-1]):
        with refused(ClassNameError, "class-specific context for 3 classes", "another's context", "Omit classnames"):
            pp.from_pretrained(model, tmp_path, classnames=names)
    pp.from_pretrained(model, tmp_path, classnames=list(NAMES)).eject()  # the saved list itself loads
    loaded = pp.from_pretrained(model, tmp_path)
    try:
        with refused(ClassNameError, "class-specific context for 3 classes", "cannot be re-targeted"):
            loaded.set_classnames(["cat", "dog", "cow"])
    finally:
        loaded.eject()


def test_silent_adapter_of_another_library_warns_with_both_names(saved):
    other = make_model("open_clip")
    with pytest.warns(BackendMismatchWarning, match="saved on a 'openai' CLIP and is loaded into a 'open_clip'"):
        loaded = pp.from_pretrained(other, saved)
    loaded.eject()
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackendMismatchWarning)
        pp.from_pretrained(other, saved, allow_other_backend=True).eject()


@pytest.mark.parametrize("dtype", [pytest.param(torch.int32, id="silent-int-tensor-in-a-dpc-adapter"),
                                   pytest.param(torch.bool, id="silent-bool-tensor-in-a-dpc-adapter")])
def test_dpc_adapter_with_integer_tensors(model, tmp_path, dtype):
    dpc = pp.wrap(model, NAMES, method="dpc", base_classes=NAMES[:2], n_ctx=2)
    pp.save_pretrained(dpc, tmp_path)
    dpc.eject()
    state = load_file(tmp_path / WEIGHTS_NAME)
    state["dpc.X.ctx"] = state["dpc.X.ctx"].to(dtype)
    save_file(state, tmp_path / WEIGHTS_NAME)
    _unhashed(tmp_path)
    with refused(CheckpointError, "DPC tensor 'ctx' has dtype", str(dtype), "expected a floating-point tensor"):
        pp.from_pretrained(model, tmp_path)


def test_ok_bool_tensor_in_a_coop_adapter(model, saved):
    save_file({"prompt.ctx": torch.zeros(2, 64, dtype=torch.bool)}, saved / WEIGHTS_NAME)
    _unhashed(saved)
    with refused(CheckpointError, "has dtype torch.bool, expected a floating-point tensor"):
        pp.from_pretrained(model, saved)


# ---------------------------------------------------------------------------- foreign checkpoints (convert)
def _garbage(path):
    path.write_bytes(bytes(range(256)) * 4)
    return path


def _fake_zip(path):
    return _sparse(path, size=2**20, head=b"PK\x03\x04" + b"\x00" * 60)


def _text(path):
    path.write_text("model weights go here\n")
    return path


def _truncated_zip(path):
    torch.save({"state_dict": {"ctx": torch.zeros(2, 4)}}, path)
    path.write_bytes(path.read_bytes()[:200])
    return path


@pytest.mark.parametrize("make, words", [
    pytest.param(_garbage, ("is not a PyTorch checkpoint", "starts with the bytes"), id="unclear-garbage-file"),
    pytest.param(_fake_zip, ("starts like a zip archive but has no valid zip directory",), id="unclear-fake-zip"),
    pytest.param(_text, ("is not a PyTorch checkpoint", "b'model we'"), id="unclear-text-file"),
    pytest.param(_truncated_zip, ("no valid zip directory",), id="unclear-truncated-torch-save"),
    pytest.param(lambda p: _sparse(p), ("is not a PyTorch checkpoint",), id="resource-3gib-sparse-checkpoint"),
])
def test_bogus_checkpoints_are_refused_as_such_not_as_unsafe(tmp_path, make, words):
    path = make(tmp_path / "model.pth")
    for allow_unsafe in (False, True):
        with refused(CheckpointError, *words) as info:
            convert(path, tmp_path / "out", allow_unsafe=allow_unsafe)
        assert not isinstance(info.value, UnsafeCheckpointError)
        assert not (tmp_path / "out").exists()
    with refused(CheckpointError, *words):
        safe_load(path)
    with refused(CheckpointError, *words):
        read_checkpoint(path, allow_unsafe=True)


def test_crash_truncated_legacy_pickle_under_allow_unsafe(tmp_path):
    path = tmp_path / "old.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"ctx": torch.zeros(2, 4)}}, f, protocol=2)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.warns(UserWarning, match="weights_only=False"):
        with refused(CheckpointError, "could not be loaded even with allow_unsafe", "truncated or corrupt"):
            safe_load(path, allow_unsafe=True)


def test_unclear_bad_safetensors_hard_prompt_names_the_file(model, tmp_path):
    bad = tmp_path / "hard.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with refused(CheckpointError, str(bad), "not a valid safetensors file"):
        pp.wrap(model, NAMES, method="ga2", hard_prompt=str(bad))
    renamed = tmp_path / "hard.pt"  # the same bytes without the suffix: the header check names it too
    renamed.write_bytes(bad.read_bytes())
    with refused(CheckpointError, str(renamed), "is not a PyTorch checkpoint"):
        pp.wrap(model, NAMES, method="ga2", hard_prompt=str(renamed))


def test_unclear_safetensors_without_the_suffix_reads_as_safetensors(tmp_path):
    save_file({"hard_prompt": torch.ones(2, 64)}, tmp_path / "hard.bin")
    assert torch.equal(read_checkpoint(tmp_path / "hard.bin")["hard_prompt"], torch.ones(2, 64))


def test_crash_convert_into_a_file(tmp_path):
    src = tmp_path / "model.pth.tar-5"
    state = {"ctx": torch.zeros(2, 64), "token_prefix": torch.zeros(2, 1, 64), "token_suffix": torch.zeros(2, 74, 64)}
    torch.save({"state_dict": state, "epoch": 5}, src)
    out = _file(tmp_path)
    with refused(CheckpointError, "is a file, not a directory"):
        convert(src, out, format="coop", classnames=["a", "b"])
    assert out.read_text() == "keep me"


def test_unclear_checkpoint_path_is_a_directory(tmp_path):
    with refused(CheckpointError, "is a directory; pass the checkpoint file in it"):
        safe_load(tmp_path)


def test_safety_raw_adapter_with_a_non_tensor(tmp_path):
    from prompt_plugins.checkpoint import AdapterConfig

    with refused(CheckpointError, "state entry 'prompt.ctx' is list, not a tensor"):
        pp.save_pretrained(RawAdapter(AdapterConfig(method="coop"), {"prompt.ctx": [1.0]}), tmp_path / "x")
    assert not (tmp_path / "x").exists()
