"""The README's real-data quick start, run as written: its ``prompt-plugins`` commands (parsed from README.md) on
the data ``examples/tiny_coop_data.py`` writes, and the output the README shows (the eval lines and the
benchmark table) equal to what the code prints now."""
import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import torch

pytest.importorskip("clip")
pytest.importorskip("PIL")

from prompt_plugins.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def quickstart() -> tuple[list[list[str]], list[str]]:
    """(the quick start's prompt-plugins commands, its shown output lines) from README.md."""
    text = (REPO / "README.md").read_text()
    block = text[text.index("Quick start without downloads"):text.index("The numbers say nothing")]
    lines = [line[4:] for line in block.splitlines() if line.startswith("    ")]
    commands, shown, i = [], [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            while line.endswith("\\"):
                i += 1
                line = line[:-1] + lines[i].strip()
            commands.append(shlex.split(line[2:]))
        else:
            shown.append(line)
        i += 1
    return commands, shown


def test_readme_quickstart_prints_what_the_readme_shows(tmp_path, monkeypatch, capsys):
    commands, shown = quickstart()
    assert commands[0][:2] == ["python", "examples/tiny_coop_data.py"]
    spec = importlib.util.spec_from_file_location("tiny_coop_data", REPO / "examples" / "tiny_coop_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.chdir(tmp_path)
    module.main(Path("qs"))
    monkeypatch.chdir(tmp_path / "qs")
    printed = capsys.readouterr().out.splitlines()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny ops: one thread is ~10x faster on a busy 2-core machine
    try:
        for argv in commands[1:]:
            assert argv[0] == "prompt-plugins", argv
            assert main(argv[1:]) == 0, argv
            printed += capsys.readouterr().out.splitlines()
    finally:
        torch.set_num_threads(threads)
    checked = [line for line in shown if line.startswith(("|", "  ", "wrote", "runs/", "zero-shot", "7 results"))
               or re.match(r"\s+\d", line)]
    assert len(checked) >= 15
    missing = [line for line in checked if line.rstrip() not in {p.rstrip() for p in printed}]
    assert not missing, "README output the code no longer prints:\n" + "\n".join(missing)
