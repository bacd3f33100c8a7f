"""Helpers of the bad-input tests: ``refused`` (the exception type and the key words of its message) and
snapshots of what a failure left on disk.

Each case's id (or test name) starts with the kind of behaviour it had before issue 15 (or issue 22, for
``test_bad_runs.py`` and ``test_bad_paths.py``): ``silent`` (a wrong
answer without a word), ``crash`` (a traceback or a raw library error, now or at first use), ``resource``
(runaway time/memory), ``safety`` (data on disk or module state left wrong), ``unclear`` (a typed error that
misled, named no fix, or came only after minutes of wasted work), ``ok`` (already right: kept as a guard; these
pass on the code before the issue too) or ``new`` (a check of an option added for the issue: ``layout``,
``video_layout``, ``check_range``, ``overwrite``, ``allow_other_backend``; issue 22: ``run.json``, ``--allow-mixed``) or ``property`` (a Hypothesis test
over generated shapes, dtypes, names or selectors). ``count_cases.py`` counts them for the README."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


#: the class list most bad-input tests wrap with
NAMES = ["red circle", "blue square", "green triangle"]


def wrapped(model, **options) -> Iterator:
    """A fixture body: ``pp.wrap(model, NAMES, n_ctx=2, **options)``, ejected afterwards (the model is shared)."""
    import prompt_plugins as pp

    wrapper = pp.wrap(model, NAMES, **{"n_ctx": 2, **options})
    yield wrapper
    wrapper.eject()


@contextmanager
def refused(error: type[BaseException], *words: str) -> Iterator[pytest.ExceptionInfo]:
    """Expect ``error`` whose message holds every one of ``words`` (plain substrings, not regexes)."""
    with pytest.raises(error) as info:
        yield info
    message = str(info.value)
    missing = [w for w in words if w not in message]
    assert not missing, f"{missing} not in the message: {message}"


def tree(root: str | os.PathLike) -> dict[str, bytes | str | None]:
    """Every path under ``root`` (hidden temporary files too) -> its bytes (None for a folder, the target for a
    symbolic link, which is not followed)."""
    root = Path(root)
    if root.is_symlink():
        return {".": "-> " + os.readlink(root)}
    if not root.exists():
        return {}
    if root.is_file():
        return {".": root.read_bytes()}
    out: dict[str, bytes | str | None] = {}
    for folder, dirs, files in os.walk(root):  # does not follow links
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            out[key] = ("-> " + os.readlink(path) if path.is_symlink() else None if path.is_dir()
                        else path.read_bytes())
    return dict(sorted(out.items()))
