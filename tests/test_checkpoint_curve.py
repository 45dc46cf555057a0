"""python -m trainers.checkpoint_curve against the trainer's own evaluations:
a real BN run on real MNIST, every checkpoint kept."""

import csv
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def test_curve_matches_the_trainers_evaluations(tmp_path):
    if not os.environ.get("TFDS_DATA_DIR"):
        pytest.skip("needs MNIST prepared for TFDS ($TFDS_DATA_DIR)")
    workdir = tmp_path / "run"
    trained = _run(
        "trainers.train", "--config=configs/mnist_bn_mlp.py", f"--workdir={workdir}",
        "--config.num_train_steps=40", "--config.eval_every_steps=20",
        "--config.steps_per_loop=20", "--config.log_every_steps=20",
        "--config.checkpoint_every_steps=20", "--config.max_checkpoints_to_keep=10",
        "--config.population_batches=5", "--config.eval_batch_size=500",
        "--config.data.eval_split=test[:1000]")
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = _run("trainers.checkpoint_curve", f"--workdir={workdir}",
                  "--population_batches=5")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(workdir / "checkpoint_curve.csv") as f:
        curve = {int(r["step"]): r for r in csv.DictReader(f)}
    with open(workdir / "metrics.csv") as f:
        logged = {int(r["step"]): r for r in csv.DictReader(f)}
    with open(workdir / "final.json") as f:
        final = json.load(f)
    assert sorted(curve) == [20, 40]
    for step in (20, 40):
        # The trainer's (distributed, batched) evaluation with moving averages.
        assert float(curve[step]["accuracy_moving"]) == pytest.approx(
            float(logged[step]["eval_accuracy"]), abs=1e-6)
        assert float(curve[step]["loss_moving"]) == pytest.approx(
            float(logged[step]["eval_loss"]), rel=1e-4)
    # The same 5 training batches as the trainer's Algorithm 2 at the end.
    assert float(curve[40]["accuracy_population"]) == pytest.approx(
        final["eval_accuracy_population"], abs=1e-6)
    assert "with population statistics" in result.stdout


def test_a_directory_without_a_run_is_refused(tmp_path):
    result = _run("trainers.checkpoint_curve", f"--workdir={tmp_path}")
    assert result.returncode == 1
    assert "ERROR (WorkdirError)" in result.stderr and "not a trainer workdir" in result.stderr
    assert os.listdir(tmp_path) == []
