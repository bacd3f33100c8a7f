"""Count the bad-input cases by kind for the README's reliability section.

    python tests/bad_inputs/count_cases.py           # print the table
    python tests/bad_inputs/count_cases.py --write   # rewrite it in README.md, between its markers

A case is one collected test item of ``tests/bad_inputs/`` (this folder) or ``tests/test_bad_inputs.py`` (issue
13's first round, kind ``round1``). Its kind is the first word of its parameter id or, without one, of its test
name after ``test_`` (``bad_cases.py`` lists the kinds); ``test_counts.py`` checks the README against this count.
"""
from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
README = REPO / "README.md"
PATHS = ("tests/bad_inputs", "tests/test_bad_inputs.py")
#: kind -> what it means, in table order
KINDS = {
    "silent": "a silently wrong answer before issue 15 / 22",
    "crash": "a traceback or a raw library error",
    "resource": "runaway time or memory (a whole bogus file read)",
    "safety": "data on disk or module state left wrong",
    "unclear": "a typed error that misled or named no fix",
    "ok": "already right: kept as a guard",
    "new": "an option or record added by issue 15 / 22 (layout, overwrite, run.json, --allow-mixed, ...)",
    "property": "a Hypothesis property over generated inputs",
    "round1": "issue 13's first round (tests/test_bad_inputs.py)",
}
START, END = "<!-- bad-input-counts -->", "<!-- /bad-input-counts -->"
NOT_CASES = ("test_counts.py",)


def node_ids() -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *PATHS],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines()
            if "::" in line and not any(f"/{name}::" in line for name in NOT_CASES)]


def kind_of(node: str) -> str:
    path, _, name = node.partition("::")
    match = re.fullmatch(r"(\w+?)(?:\[(.*)\])?", name)
    assert match, node
    func, param = match.groups()
    for word in ((param or "").split("-")[0], func.removeprefix("test_").split("_")[0]):
        if word in KINDS and word != "round1":
            return word
    if path.endswith("test_bad_inputs.py"):
        return "round1"
    raise ValueError(f"{node}: no kind; start its id or test name with one of {list(KINDS)}")


def count(nodes: list[str]) -> Counter:
    return Counter(kind_of(n) for n in nodes)


def table(counts: Counter) -> str:
    rows = [f"| `{k}` | {KINDS[k]} | {counts[k]} |" for k in KINDS if counts[k]]
    return "\n".join(["| kind | behaviour before the fix | cases |", "|---|---|---|", *rows,
                      f"| **total** | | **{sum(counts.values())}** |"])


def readme_table(text: str) -> str:
    start, end = text.index(START) + len(START), text.index(END)
    return text[start:end].strip()


def main(argv: list[str]) -> int:
    text = table(count(node_ids()))
    if "--write" in argv:
        old = README.read_text()
        start, end = old.index(START) + len(START), old.index(END)
        README.write_text(f"{old[:start]}\n{text}\n{old[end:]}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
