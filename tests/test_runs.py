"""`bn_zoo.runs`, the run directory, read the way every reader reads it.

A run directory is written here by hand, as the trainer lays it out (a
config.json, two checkpoints of a tf.train.CheckpointManager, final.json),
with weights drawn at random and kept in numpy as the reference. The newest
checkpoint is then truncated: `runs.restore`, `runs.restore_model`, the
evaluation's `from_workdir` and the old `bn_zoo.training` names all restore
the older one, with one warning naming both, and report its step.
"""

import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

import bn_zoo
from bn_zoo import population, runs

CONFIG = {"model": {"name": "bn_mlp", "kwargs": {}}, "seed": 0}


def _randomize(model, rng):
    """Draws every variable at random (variances positive); returns the
    values as numpy, by variable path."""
    values = {}
    for variable in model.variables:
        value = rng.uniform(0.5, 1.5, variable.shape).astype(variable.dtype)
        if variable.path.endswith("use_population_statistics"):
            value = np.zeros(variable.shape, variable.dtype)
        variable.assign(value)
        values[variable.path] = value
    return values


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run of bn_mlp with checkpoints at steps 5 and 10, step 10's data
    file truncated; {step: weights} of both."""
    path = tmp_path_factory.mktemp("run")
    with open(path / "config.json", "w") as f:
        json.dump(CONFIG, f)
    model = bn_zoo.create_model("bn_mlp", weights=None)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                         str(path / "checkpoints"), max_to_keep=5)
    rng = np.random.default_rng(11)
    saved = {}
    for step in (5, 10):
        saved[step] = _randomize(model, rng)
        manager.save(checkpoint_number=step)
    os.truncate(path / "checkpoints" / "ckpt-10.data-00000-of-00001", 100)
    return str(path), saved


def _weights(model):
    return {v.path: np.asarray(v) for v in model.variables}


def test_every_reader_restores_the_newest_readable_checkpoint(run_dir, caplog):
    path, saved = run_dir
    with caplog.at_level(logging.WARNING):
        run = runs.restore(path)
    assert run.step == 5 and run.checkpoint == os.path.join(path, "checkpoints", "ckpt-5")
    for name, value in _weights(run.model).items():
        np.testing.assert_array_equal(value, saved[5][name], err_msg=name)
    warnings = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(warnings) == 1 and "ckpt-10" in warnings[0] and warnings[0].endswith(
        f"using the older checkpoint {run.checkpoint} instead."), warnings

    from bn_zoo.evaluation import members
    from bn_zoo.training import checkpoints as old_checkpoints

    member = members.from_workdir(path)
    assert member.name == f"bn_mlp ({path}, step 5)"
    for model in (member.model, runs.restore_model(path), bn_zoo.training.restore_model(path),
                  old_checkpoints.restore_model(path)):
        for name, value in _weights(model).items():
            np.testing.assert_array_equal(value, saved[5][name], err_msg=name)
    # The listing still names step 10: only restoring tells it is unreadable.
    assert runs.latest_step(os.path.join(path, "checkpoints")) == 10
    assert [step for step, _ in runs.checkpoint_paths(os.path.join(path, "checkpoints"))] == [5, 10]


def test_population_statistics_only_for_the_step_final_json_names(run_dir, tmp_path):
    path, saved = run_dir
    x = np.random.default_rng(3).uniform(0, 1, (4, 28, 28, 1)).astype("float32")
    for final_step, expected in ((5, "population"), (10, "moving")):
        runs.write_json(os.path.join(path, "final.json"),
                        {"step": final_step, "inference_statistics": "population"})
        run = runs.restore(path, classifier_activation=None)
        assert run.inference_statistics == expected
        layers = population.batch_normalization_layers(run.model)
        assert layers and all(l.inference_statistics == expected for l in layers)
        # Inference normalizes with the statistics named, as numpy computes it.
        h = x.reshape(len(x), -1).astype(np.float64)
        for layer in run.model.layers[1:]:
            weights = {v.path.rsplit("/", 1)[-1]: np.asarray(v, np.float64)
                       for v in layer.variables}
            if "kernel" in weights:
                h = h @ weights["kernel"] + weights.get("bias", 0.0)
            elif "gamma" in weights:
                prefix = "population" if expected == "population" else "moving"
                mean, variance = weights[f"{prefix}_mean"], weights[f"{prefix}_variance"]
                h = (weights["gamma"] * (h - mean) / np.sqrt(variance + layer.epsilon)
                     + weights["beta"])
            elif layer.name.endswith("sigmoid"):
                h = 1 / (1 + np.exp(-h))
        np.testing.assert_allclose(run.model(x, training=False), h, rtol=1e-4, atol=1e-5)
    os.remove(os.path.join(path, "final.json"))


def test_a_directory_without_a_run_is_refused(tmp_path):
    with pytest.raises(runs.WorkdirError, match="has no config.json: not a trainer workdir"):
        runs.restore(str(tmp_path))
    runs.write_json(str(tmp_path / "config.json"), CONFIG)
    with pytest.raises(runs.WorkdirError, match="has no checkpoint yet; train first"):
        runs.restore_model(str(tmp_path))
    assert runs.read_final(str(tmp_path)) is None and runs.read_metrics(str(tmp_path)) == []
    assert runs.model_name(str(tmp_path)) == "bn_mlp"


def test_no_readable_checkpoint_is_one_error_naming_them(tmp_path):
    runs.write_json(str(tmp_path / "config.json"), CONFIG)
    model = bn_zoo.create_model("bn_mlp", weights=None)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                         str(tmp_path / "checkpoints"), max_to_keep=5)
    manager.save(checkpoint_number=3)
    os.remove(tmp_path / "checkpoints" / "ckpt-3.data-00000-of-00001")
    with pytest.raises(runs.WorkdirError, match=r"No checkpoint in .* can be read: .*ckpt-3 "
                       r"\(ckpt-3\.index: "):
        runs.restore(str(tmp_path))


def test_metrics_rewritten_atomically_and_the_old_names_still_work(tmp_path):
    from bn_zoo.training import errors
    from bn_zoo.training import workdir as old_workdir

    path = str(tmp_path / runs.METRICS_FILE)
    log = runs.MetricsLog(path, ["step", "eval_accuracy", "probe_p50"])
    for step, accuracy in ((0, 0.1), (10, None), (20, 0.75)):
        log.append({"step": step, "eval_accuracy": accuracy})
    log.truncate(10)
    with open(path) as f:
        assert f.read() == "step,eval_accuracy,probe_p50\n0,0.1,\n10,,\n"
    rows = runs.read_metrics(str(tmp_path))
    assert [r["step"] for r in rows] == [0, 10] and np.isnan(rows[1]["eval_accuracy"])
    assert sorted(os.listdir(tmp_path)) == [runs.METRICS_FILE]  # no temporary left
    assert old_workdir.read_csv is runs.read_csv and old_workdir.MetricsLog is runs.MetricsLog
    assert errors.WorkdirError is runs.WorkdirError
    assert issubclass(old_workdir.Workdir, runs.RunDir)
