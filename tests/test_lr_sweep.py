"""python -m trainers.lr_sweep (Section 3.3): real runs on real MNIST, a rate
that diverges, the CSV / table / plot, resuming, and a refused config.

The sweep and the refused config run as the real command; the rerun calls
`run_sweep` in this process, as the command's main does."""

import csv
import json
import os

import pytest

import commands
import config_flags
from bn_zoo.paper import lr_sweep

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

TINY = [
    "--config.train.num_train_steps=60", "--config.train.eval_every_steps=30",
    "--config.train.steps_per_loop=30", "--config.train.log_every_steps=30",
    "--config.train.checkpoint_every_steps=60", "--config.train.population_batches=5",
    "--config.learning_rates=(0.5,1e38)",
    # Evaluations on a tenth of the test set: the rows' status may be ok or stalled.
    "--config.train.data.eval_split=test[:1000]", "--config.train.eval_batch_size=1000",
]


def _config(*extra):
    """configs/lr_sweep.py with TINY and `extra` applied, as on the command line."""
    from configs import lr_sweep as lr_sweep_config

    return config_flags.apply(lr_sweep_config.get_config(), [*TINY, *extra])


def _sweep(workdir, *extra):
    return commands.run("trainers.lr_sweep", ["--config=configs/lr_sweep.py",
                                              f"--workdir={workdir}", *TINY, *extra],
                        tf_log_level="2")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    if not os.environ.get("TFDS_DATA_DIR"):
        pytest.skip("needs MNIST prepared for TFDS ($TFDS_DATA_DIR)")
    workdir = str(tmp_path_factory.mktemp("lr_sweep"))
    result = _sweep(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


def _rows(workdir):
    with open(os.path.join(workdir, "lr_sweep.csv")) as f:
        return list(csv.DictReader(f))


def test_every_run_is_recorded_with_its_status(sweep):
    workdir, result = sweep
    rows = _rows(workdir)
    assert [(r["network"], float(r["learning_rate"])) for r in rows] == [
        ("mlp", 0.5), ("mlp", 1e38), ("bn_mlp", 0.5), ("bn_mlp", 1e38)]
    for row in rows:
        directory = os.path.join(workdir, row["network"], f"lr_{float(row['learning_rate']):g}")
        if float(row["learning_rate"]) == 1e38:
            # A step of size 1e38 overflows float32: the trainer stops the run.
            assert row["status"] == "diverged" and row["final_accuracy"] == ""
            with open(os.path.join(directory, "diverged.json")) as f:
                assert "NaN/Inf" in json.load(f)["error"]
        else:
            with open(os.path.join(directory, "final.json")) as f:
                final = json.load(f)
            assert row["status"] in ("ok", "stalled")
            assert float(row["final_accuracy"]) == pytest.approx(final["eval_accuracy"])
            assert int(row["steps"]) == final["step"] == 60
    bn_row = next(r for r in rows if r["network"] == "bn_mlp" and r["status"] != "diverged")
    assert bn_row["final_accuracy_moving"] != ""  # BN: both inference statistics.
    with open(os.path.join(workdir, "lr_sweep.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "| learning rate | mlp final accuracy |" in result.stdout
    assert "diverged" in result.stdout and "Claim" in result.stdout
    with open(os.path.join(workdir, "lr_sweep.md")) as f:
        assert "| learning rate |" in f.read()


def test_rerun_trains_nothing_again(sweep):
    workdir, _ = sweep
    watched = []
    for root, _, files in os.walk(workdir):
        watched += [os.path.join(root, f) for f in files if "ckpt" in f or f in (
            "metrics.csv", "diverged.json", "final.json")]
    before = {p: os.stat(p).st_mtime_ns for p in watched}
    from bn_zoo.paper.lr_sweep import run_sweep

    text, _ = run_sweep(_config(), workdir)  # What the command's main calls.
    assert "| learning rate | mlp final accuracy |" in text
    assert {p: os.stat(p).st_mtime_ns for p in watched} == before
    assert _rows(workdir)[0]["final_accuracy"] != ""


def test_a_bad_rate_is_refused_before_anything_is_written(tmp_path):
    workdir = tmp_path / "sweep"
    result = _sweep(str(workdir), "--config.learning_rates=(0.1,-1.0)")
    assert result.returncode == 1
    assert "ERROR (ConfigError): config.learning_rates must be positive" in result.stderr
    assert not workdir.exists()


def _row(network, rate, status, final, steps_to_good=""):
    return {"network": network, "learning_rate": rate, "status": status,
            "final_accuracy": final, "steps_to_good": steps_to_good}


def test_claim_needs_a_wider_range_that_reaches_higher():
    rows = [_row("mlp", 0.1, "ok", 0.975), _row("mlp", 1.0, "ok", 0.98),
            _row("mlp", 10.0, "stalled", 0.11),
            _row("bn", 0.1, "ok", 0.975), _row("bn", 1.0, "ok", 0.98),
            _row("bn", 10.0, "ok", 0.979)]
    assert lr_sweep.claim(rows, "mlp", "bn", 0.97)["holds"]
    assert lr_sweep.claim(rows, "mlp", "bn", 0.97)["bn"] == [0.1, 10.0, 3]
    rows[-1] = _row("bn", 10.0, "diverged", "")
    assert not lr_sweep.claim(rows, "mlp", "bn", 0.97)["holds"]


def test_run_row_reads_steps_to_good_from_the_evaluations():
    nan = float("nan")
    metrics = [{"step": 0, "eval_accuracy": 0.1}, {"step": 50, "eval_accuracy": nan},
               {"step": 100, "eval_accuracy": 0.96}, {"step": 200, "eval_accuracy": 0.972},
               {"step": 300, "eval_accuracy": 0.969}]
    final = {"eval_accuracy": 0.969, "step": 300}
    row = lr_sweep.run_row("mlp", 1.0, metrics, final, None, 1.0, 0.97, 0.2)
    assert (row["status"], row["steps_to_good"], row["max_accuracy"]) == ("ok", 200, 0.972)
    row = lr_sweep.run_row("mlp", 1.0, metrics[:3], None, "100-200", 1.0, 0.97, 0.2)
    assert (row["status"], row["steps_to_good"], row["steps"]) == ("diverged", "", 100)
