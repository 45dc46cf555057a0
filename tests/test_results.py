"""Figure 3's table from metrics CSVs (`bn_zoo.paper.figure3`, `trainers/figure3.py`).

Synthetic workdirs hold hand-written accuracy curves; the expected steps,
speed-ups and maxima below are worked out by hand from those curves.
"""

import csv
import json
import os

import pytest

import commands
from bn_zoo.paper import figure3, workdirs
from commands import ROOT

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

# step:            0     100   200   300   400   500
CURVES = {
    "inception": ([0.10, 0.30, 0.50, 0.60, 0.70, 0.72], "inception", True),
    "bn_x5": ([0.10, 0.55, 0.73, 0.71, 0.74, 0.73], "bn_x5", True),
    "bn_x30": ([0.10, 0.40, 0.65, 0.72, 0.76, 0.75], "bn_x30", True),
    # Diverged after step 200: no final.json, NaN-free rows up to 200.
    "inception_x5_lr": ([0.10, 0.12, 0.11], "inception", False),
    "inception_sigmoid": ([0.10, 0.11, 0.10, 0.12, 0.11, 0.10], "inception", True),
    "bn_x5_sigmoid": ([0.10, 0.30, 0.52, 0.66, 0.69, 0.70], "bn_x5_sigmoid", True),
}


def write_run(root, name, accuracies, model, finished):
    workdir = os.path.join(root, name)
    os.makedirs(workdir)
    with open(os.path.join(workdir, "metrics.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "train_loss", "eval_accuracy", "eval_top5_accuracy"])
        for index, accuracy in enumerate(accuracies):
            # The first row has no training loss yet: an empty cell.
            writer.writerow([100 * index, "" if index == 0 else 1.0, accuracy, 0.9])
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump({"model": {"name": model}}, f)
    if finished:
        with open(os.path.join(workdir, "final.json"), "w") as f:
            json.dump({"step": 100 * (len(accuracies) - 1)}, f)
    return workdir


@pytest.fixture
def root(tmp_path):
    for name, (accuracies, model, finished) in CURVES.items():
        write_run(str(tmp_path), name, accuracies, model, finished)
    return str(tmp_path)


def test_figure3_table_against_hand_arithmetic(root):
    runs = workdirs.read_runs(workdirs.find_workdirs(root))
    table = {row["name"]: row for row in figure3.figure3_table(runs, baseline="inception")}
    # Target = Inception's maximum, 0.72, first reached at step 500.
    assert all(row["target"] == 0.72 for row in table.values())
    assert table["inception"]["steps_to_target"] == 500
    assert table["bn_x5"]["steps_to_target"] == 200  # 0.73 >= 0.72 at step 200.
    assert table["bn_x30"]["steps_to_target"] == 300  # 0.72 >= 0.72 at step 300.
    assert table["bn_x5"]["speedup"] == pytest.approx(500 / 200)
    assert table["bn_x30"]["speedup"] == pytest.approx(500 / 300)
    assert table["inception"]["speedup"] == pytest.approx(1.0)
    for name in ("inception_x5_lr", "inception_sigmoid", "bn_x5_sigmoid"):
        assert table[name]["steps_to_target"] is None and table[name]["speedup"] is None
    assert (table["bn_x5"]["max_accuracy"], table["bn_x5"]["max_step"]) == (0.74, 400)
    assert (table["bn_x30"]["max_accuracy"], table["bn_x30"]["max_step"]) == (0.76, 400)
    # Ties: the first step reaching the maximum.
    assert (table["inception_sigmoid"]["max_accuracy"],
            table["inception_sigmoid"]["max_step"]) == (0.12, 300)
    assert table["inception_x5_lr"]["final_step"] == 200
    assert not table["inception_x5_lr"]["finished"] and table["bn_x5"]["finished"]
    assert table["bn_x5"]["model"] == "bn_x5"

    # A fixed target instead: 0.70 -> inception 400, bn_x5 200, bn_x30 300,
    # bn_x5_sigmoid 500.
    fixed = {row["name"]: row["steps_to_target"]
             for row in figure3.figure3_table(runs, target=0.70, baseline="inception")}
    assert fixed == {"inception": 400, "bn_x5": 200, "bn_x30": 300, "inception_x5_lr": None,
                     "inception_sigmoid": None, "bn_x5_sigmoid": 500}


def test_claims_of_section_4_2_2(root):
    runs = workdirs.read_runs(workdirs.find_workdirs(root))
    claims = figure3.check_claims(figure3.figure3_table(runs, baseline="inception"))
    assert len(claims) == 7
    by_text = {c["claim"]: c["holds"] for c in claims}
    assert by_text["bn_x5 reaches inception's max accuracy in fewer steps"]
    assert by_text["bn_x30 reaches inception's max accuracy in fewer steps"]
    assert by_text["bn_x30 reaches a higher max accuracy than bn_x5"]  # 0.76 > 0.74.
    assert by_text["bn_x5 reaches the target in fewer steps than bn_x30"]  # 200 < 300.
    high = next(c for c in claims if c["claim"].startswith("inception_x5_lr"))
    assert high["holds"] and "stopped at step 200" in high["detail"]
    sigmoid = next(c for c in claims if c["claim"].startswith("inception_sigmoid"))
    assert sigmoid["holds"]  # 0.12 <= 0.20.
    bn_sigmoid = next(c for c in claims if c["claim"].startswith("bn_x5_sigmoid"))
    assert bn_sigmoid["holds"]  # 0.70 >= 0.50.


def test_a_claim_can_fail(root):
    runs = workdirs.read_runs([os.path.join(root, n) for n in ("inception", "bn_x5_sigmoid")])
    table = figure3.figure3_table(runs, target=0.5, baseline="bn_x5_sigmoid")
    # Inception reaches 0.5 at step 200, as fast as BN-x5-Sigmoid: not fewer.
    claims = figure3.check_claims(table, baseline="bn_x5_sigmoid", bn_runs=("inception",))
    assert claims[0]["holds"] is False
    assert claims[0]["detail"] == "inception: step 200, bn_x5_sigmoid: step 200"


def test_bad_arguments():
    with pytest.raises(FileNotFoundError, match="has no metrics.csv"):
        workdirs.read_run(ROOT)
    with pytest.raises(ValueError, match="Give a target accuracy, or a baseline"):
        figure3.figure3_table([])
    with pytest.raises(ValueError, match="No run named 'inception'"):
        figure3.figure3_table([], baseline="inception")


def test_figure3_command_prints_the_table_and_plots(root, tmp_path):
    output = str(tmp_path / "plot" / "figure3.png")
    result = commands.run("trainers.figure3", [f"--root={root}", "--baseline=inception",
                                               f"--output={output}"], timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "| run | model | steps to 72.00% | speedup | max accuracy (at step) |" in lines[0]
    # Runs named after the paper's models first, in its order; then the others.
    assert [line.split("|")[1].strip() for line in lines[2:8]] == [
        "inception", "bn_x5", "bn_x30", "bn_x5_sigmoid", "inception_sigmoid", "inception_x5_lr"]
    row = next(line for line in lines if line.startswith("| bn_x5 |"))
    assert "| 200 | 2.5× | 74.00% (400) | 500 |" in row
    row = next(line for line in lines if line.startswith("| inception_x5_lr |"))
    assert "not reached" in row and "stopped at step 200" in row
    assert "| bn_x5 | 2.1·10⁶ | 73.0% |" in result.stdout  # The paper's Figure 3.
    with open(output, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    bad = commands.run("trainers.figure3", [f"--root={tmp_path}/none"], timeout=120,
                       tf_log_level=commands.INHERIT)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.rstrip().splitlines()[-1] == (
        f"ERROR (FileNotFoundError): {tmp_path}/none is not a directory.")
