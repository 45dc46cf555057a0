"""python -m trainers.checkpoint_curve against the trainer's own evaluations:
a real BN run on real MNIST (trained in this process), every checkpoint kept;
a directory without a run, and a config.json edited after training, refused."""

import csv
import json
import os
import shutil
import sys

import pytest

import commands


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A 40-step bn_mlp run with its checkpoints at steps 20 and 40."""
    if not os.environ.get("TFDS_DATA_DIR"):
        pytest.skip("needs MNIST prepared for TFDS ($TFDS_DATA_DIR)")
    from bn_zoo import training
    from configs import mnist as mnist_configs

    config = mnist_configs.get_config("bn_mlp")
    config.num_train_steps = 40
    config.eval_every_steps = config.steps_per_loop = config.log_every_steps = 20
    config.checkpoint_every_steps = 20
    config.max_checkpoints_to_keep = 10
    config.population_batches = 5
    config.eval_batch_size = 500
    config.data.eval_split = "test[:1000]"
    path = tmp_path_factory.mktemp("curve") / "run"
    training.train(config, str(path))
    return path


def test_curve_matches_the_trainers_evaluations(workdir):
    result = commands.run("trainers.checkpoint_curve",
                          [f"--workdir={workdir}", "--population_batches=5"], tf_log_level="2")
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


@pytest.mark.parametrize("edit", [{"batch_norm_kwargs": {"renorm": True}}, {"classes": 5}])
def test_a_config_edited_after_training_is_refused(workdir, tmp_path, monkeypatch, capsys, edit):
    """A copy of the run whose config.json turns on batch renormalization (its
    checkpoints lack the BN layers' renorm variables) or has 5 classes (the
    classifier's shapes differ). Checked through `cli.run`, as the command's
    main calls `curve` (the command line: the test below)."""
    from bn_zoo.training import cli
    from file_tree import snapshot
    from bn_zoo.paper.checkpoint_curve import curve

    edited = tmp_path / "edited"
    shutil.copytree(workdir, edited, ignore=shutil.ignore_patterns("checkpoint_curve.csv"))
    with open(edited / "config.json") as f:
        config = json.load(f)
    config["model"]["kwargs"].update(edit)
    with open(edited / "config.json", "w") as f:
        json.dump(config, f)
    before = snapshot(edited)
    monkeypatch.setattr(sys, "argv", ["trainers/checkpoint_curve.py"])  # No --verbosity.
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        cli.run(lambda: curve(str(edited), 5))
    assert exited.value.code == 1
    line = commands.error_line(capsys.readouterr().err)
    assert line.startswith(f"ERROR (WorkdirError): {edited}/checkpoints/ckpt-20 does not "
                           "fit the bn_mlp of config.json"), line
    assert snapshot(edited) == before


def test_a_directory_without_a_run_is_refused(tmp_path):
    result = commands.run("trainers.checkpoint_curve", [f"--workdir={tmp_path}"],
                          tf_log_level="2")
    assert result.returncode == 1
    assert "ERROR (WorkdirError)" in result.stderr and "not a trainer workdir" in result.stderr
    assert os.listdir(tmp_path) == []
