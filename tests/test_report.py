"""``prompt-plugins benchmark``: means over seeds, HM of the means, the average over data sets, Markdown / CSV /
plot, and clear errors."""
import json

import pytest

from prompt_plugins.base_new import harmonic_mean
from prompt_plugins.cli import main


def result(dataset, method, seed, base, new, shots=16):
    return {"dataset": dataset, "method": method, "seed": seed, "shots": shots,
            "base": {"accuracy": base, "classes": 10, "items": 100}, "new": {"accuracy": new, "classes": 9, "items": 90},
            "hm": harmonic_mean(base, new)}


@pytest.fixture
def results(tmp_path):
    runs = tmp_path / "runs"
    numbers = {("OxfordPets", "coop"): [(90, 60), (92, 62), (94, 64)], ("EuroSAT", "coop"): [(80, 40), (82, 44), (84, 48)],
               ("OxfordPets", "dpc"): [(95, 60), (95, 62), (95, 64)], ("ImageNet", "coop"): [(70, 50)]}
    for (dataset, method), seeds in numbers.items():
        for seed, (b, n) in enumerate(seeds, 1):
            path = runs / dataset / method / f"seed{seed}" / "result.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(result(dataset, method, seed, b, n)))
            (path.parent / "adapter_config.json").write_text(json.dumps({"method": method}))  # skipped
    return runs


def test_table_means_over_seeds_hm_of_means_and_average(results, tmp_path, capsys):
    md, csv_file, plot = tmp_path / "t.md", tmp_path / "t.csv", tmp_path / "t.png"
    assert main(["benchmark", str(results), "--markdown", str(md), "--csv", str(csv_file), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "10 results: 2 method(s) on 3 data set(s)" in out
    rows = {tuple(line.split(",")[:2]): line.split(",") for line in csv_file.read_text().splitlines()[1:]}
    pets = rows[("OxfordPets", "coop")]
    assert pets[3] == "1 2 3" and (pets[4], pets[5]) == ("92.00", "62.00")
    assert pets[6] == f"{harmonic_mean(92, 62):.2f}"  # HM of the means, not the mean of the HMs
    average = rows[("Average (3 data sets)", "coop")]
    base, new = (92 + 82 + 70) / 3, (62 + 44 + 50) / 3
    assert (average[4], average[5], average[6]) == (f"{base:.2f}", f"{new:.2f}", f"{harmonic_mean(base, new):.2f}")
    assert ("Average (1 data set)", "dpc") in rows
    lines = md.read_text().splitlines()
    assert lines[0].startswith("| data set | method |") and lines[2].startswith("| Average (3 data sets) | coop")
    assert [line.split("|")[1].strip() for line in lines[4:]][:3] == ["ImageNet", "OxfordPets", "OxfordPets"]  # CoOp's order
    assert plot.stat().st_size > 1000


def test_report_alias_and_list_files(tmp_path, capsys):
    path = tmp_path / "both.json"
    path.write_text(json.dumps([result("DTD", "coop", 1, 60, 50), result("DTD", "coop", 2, 62, 52)]))
    assert main(["report", str(path)]) == 0
    assert "| DescribableTextures" not in capsys.readouterr().out  # names are kept as eval wrote them


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("not_result", "is not an eval result"),
    ("duplicate", "is in both"),
    ("empty", "no eval results"),
])
def test_errors(tmp_path, capsys, case, message):
    path = tmp_path / "r.json"
    if case == "not_result":
        path.write_text('{"method": "coop"}')
    elif case == "duplicate":
        path.write_text(json.dumps([result("DTD", "coop", 1, 60, 50), result("DTD", "coop", 1, 61, 50)]))
    elif case == "empty":
        path = tmp_path / "folder"
        path.mkdir()
    assert main(["benchmark", str(path)]) == 2
    assert message in capsys.readouterr().err
