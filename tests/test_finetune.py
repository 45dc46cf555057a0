"""Fine-tuning in the trainer: start from weights, freeze schedules, the
end-of-run population statistics kept apart from the training checkpoints.

The runs are bn_mlp on real MNIST (the trainer's cheapest network), through
`training.train`; references are independent of the
code under test: the weights file read with h5py, Algorithm 2 computed in
numpy float64 from that file, an uninterrupted run of the same config.

- A `.weights.h5` of a 1000-class model: the head is built anew, every other
  variable is loaded, and with `freeze="backbone"` for the whole run every
  backbone variable (BN statistics and counters included) still equals the
  file's at the end; `population_batches > 0` then estimates the frozen
  layers too (it used to crash after the last step, final.json unwritten).
- A barely trained backbone is estimated before it is frozen (Algorithm 2
  in numpy), stays so while frozen and trains after it is unfrozen (the
  exact resume across a real SIGTERM: tests/test_finetune_photos.py).
- Extending a finished run (num_train_steps raised) gives the metrics of an
  uninterrupted run exactly: its checkpoint keeps the moving averages, and
  the population statistics live in population/ (they used to be written
  into the last checkpoint, and the extension evaluated with them as
  "moving").
- Bad weights are one ERROR line with nothing written; every source form
  (a `.keras` file, another workdir, a nested backbone) loads what it holds.
"""

import functools
import logging
import os
import re

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import bn_zoo
import config_flags
from bn_zoo import population, runs, training
from configs import mnist as mnist_configs
from file_tree import snapshot

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

SMALL = {
    "steps_per_loop": 10,
    "log_every_steps": 10,
    "eval_every_steps": 20,
    "checkpoint_every_steps": 20,
    "data.train_split": "train[:3000]",
    "data.eval_split": "test[:1000]",
    "eval_batch_size": 1000,
    "probe.layer": "",
    "population_batches": 0,
}
# Keras' weights-file groups of bn_mlp's layers (class and rank).
GROUPS = {
    "hidden1_dense": "dense", "hidden2_dense": "dense_1", "hidden3_dense": "dense_2",
    "predictions": "dense_3", "hidden1_bn": "batch_normalization",
    "hidden2_bn": "batch_normalization_1", "hidden3_bn": "batch_normalization_2",
}
BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance", "population_mean",
                "population_variance", "use_population_statistics",
                "moving_statistics_updates")


def config(**fields):
    c = mnist_configs.get_config("bn_mlp")
    for path, value in {**SMALL, **fields}.items():
        config_flags.set_field(c, path, value)
    return c


def file_values(path):
    """{layer name: [arrays in the file's order]} of a bn_mlp weights file,
    read with h5py."""
    with h5py.File(path, "r") as f:
        return {name: [np.asarray(f[f"layers/{group}/vars/{i}"])
                       for i in range(len(f[f"layers/{group}/vars"]))]
                for name, group in GROUPS.items()}


def checkpoint_values(path, classes=10):
    """{layer name: [arrays]} of a training checkpoint, restored into bn_mlp."""
    model = bn_zoo.create_model("bn_mlp", weights=None, classes=classes,
                                classifier_activation=None)
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    return {name: [np.asarray(v) for v in model.get_layer(name).weights] for name in GROUPS}


def write_weights(path, classes, rng, updates):
    """A bn_mlp file with `classes` outputs, every variable drawn at random,
    the BN update counters at `updates`; returns nothing (read it back with
    h5py)."""
    model = bn_zoo.create_model("bn_mlp", weights=None, classes=classes)
    for variable in model.weights:
        name = variable.path.rsplit("/", 1)[-1]
        if name == "use_population_statistics":
            value = np.zeros(variable.shape)
        elif name == "moving_statistics_updates":
            value = np.full(variable.shape, float(updates))
        elif name.endswith("variance") or name == "gamma":
            value = rng.uniform(0.5, 1.5, variable.shape)
        else:
            value = rng.normal(0.0, 0.1, variable.shape)
        variable.assign(value.astype(variable.dtype))
    model.save_weights(path)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    directory = tmp_path_factory.mktemp("weights")
    rng = np.random.default_rng(26)
    files = {"imagenet_like": str(directory / "bn_mlp_1000.weights.h5"),
             "barely_trained": str(directory / "bn_mlp_barely.weights.h5")}
    # The shipped MNIST backbone (trained, caught up) under a random 1000-way head.
    trained = bn_zoo.create_model("bn_mlp", weights="mnist")
    model = bn_zoo.create_model("bn_mlp", weights=None, classes=1000, seed=3)
    for layer in model.layers:
        if layer.weights and layer.name != "predictions":
            layer.set_weights(trained.get_layer(layer.name).get_weights())
    population.set_inference_statistics(model, "moving")
    model.save_weights(files["imagenet_like"])
    write_weights(files["barely_trained"], 10, rng, updates=5)
    return files


def test_a_1000_class_file_gives_the_backbone_and_a_new_head(weights, tmp_path, caplog):
    workdir = str(tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="absl"):
        final = training.train(config(**{
            # Seed 1: seed 0 draws the head the shipped backbone was trained with.
            "seed": 1, "num_train_steps": 40, "model.weights": weights["imagenet_like"],
            "model.freeze": "backbone", "population_batches": 5}), workdir)
    path = weights["imagenet_like"]
    assert (f"Loaded 27 of 29 variables from {path}; 2 new (initialized afresh): "
            "predictions/kernel (100, 10), predictions/bias (10,); 1 layer(s) of the file "
            "unused: layers/dense_3.") in caplog.messages
    assert any(m.startswith("Freezing the backbone (every layer but the head 'predictions'; "
                            "3 BN layer(s) in inference mode) for the whole run")
               for m in caplog.messages), caplog.messages
    # The frozen layers were estimated at the end: final.json is written.
    assert final == runs.read_final(workdir) and final["population_batches"] == 5
    assert final["inference_statistics"] == "population"
    assert runs.read_config(workdir)["model"]["weights"] == path
    assert runs.read_class_names(workdir) == tuple(str(i) for i in range(10))

    reference = file_values(path)
    trained = checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-40"))
    for name in GROUPS:
        if name == "predictions":
            continue
        assert len(trained[name]) == len(reference[name]), name
        for i, (got, expected) in enumerate(zip(trained[name], reference[name])):
            np.testing.assert_array_equal(got, expected, err_msg=f"{name} variable {i}")
    kernel, bias = trained["predictions"]
    assert kernel.shape == (100, 10) and bias.shape == (10,)
    rows = runs.read_metrics(workdir)
    assert rows[0]["eval_accuracy"] < 0.3 and rows[-1]["eval_accuracy"] > 0.8  # Chance: 0.1.

    # The population statistics: of the fine-tuning data, in population/, not
    # in the training checkpoint, whose layers still choose the moving averages.
    model = runs.restore_model(workdir, classifier_activation=None)
    for name in ("hidden1_bn", "hidden2_bn", "hidden3_bn"):
        layer = model.get_layer(name)
        assert layer.inference_statistics == "population"
        np.testing.assert_array_equal(layer.moving_mean, reference[name][2])
        assert not np.allclose(layer.population_mean, reference[name][4])
        assert trained[name][6] == 0.0  # use_population_statistics in ckpt-40


def algorithm2(weights_path, batches):
    """Algorithm 2's (mean, variance) of each BN layer of bn_mlp over
    `batches`, the network run in training mode, numpy float64."""
    values = file_values(weights_path)
    sums = {}
    for images in batches:
        h = np.asarray(images, np.float64).reshape(len(images), -1)
        for i in (1, 2, 3):
            h = h @ values[f"hidden{i}_dense"][0]
            mean, variance = h.mean(0), h.var(0)
            m = len(h)
            gamma, beta = values[f"hidden{i}_bn"][:2]
            total = sums.setdefault(i, [0.0, 0.0])
            total[0] = total[0] + mean
            total[1] = total[1] + variance * m / (m - 1)
            h = gamma * (h - mean) / np.sqrt(variance + 1e-3) + beta
            h = 1.0 / (1.0 + np.exp(-h))
    return {i: (s[0] / len(batches), s[1] / len(batches)) for i, s in sums.items()}


def test_a_barely_trained_backbone_is_estimated_before_it_is_frozen(weights, tmp_path, caplog):
    from bn_zoo.models import preprocess_input
    from bn_zoo.training import inputs

    fields = {"num_train_steps": 80, "model.weights": weights["barely_trained"],
              "model.freeze": "backbone", "model.freeze_steps": 50,
              "model.freeze_estimate_batches": 6, "max_checkpoints_to_keep": 5}
    workdir = str(tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="absl"):
        training.train(config(**fields), workdir)
    assert any(m.startswith(
        "3 of the 3 BN layer(s) to freeze had moving averages that had not caught up "
        "(initial values weighed up to 95.1%): estimated Algorithm 2's statistics from "
        "6 training batches and made them their moving averages before freezing")
        for m in caplog.messages), caplog.messages
    assert "Unfreezing at step 50: every layer trains from step 51 on." in caplog.messages

    # The frozen phase (ckpt-40): the backbone is the file's, but for the
    # moving averages, which are Algorithm 2's over the first 6 training batches.
    resolved = training.resolve(config(**fields))
    data = inputs.create(resolved.data, functools.partial(preprocess_input, mode="mnist"))
    batches = [images for images, _ in data.population_dataset(60, resolved.seed).take(6)]
    expected = algorithm2(weights["barely_trained"], batches)
    reference = file_values(weights["barely_trained"])
    frozen = checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-40"))
    for i in (1, 2, 3):
        np.testing.assert_array_equal(frozen[f"hidden{i}_dense"][0],
                                      reference[f"hidden{i}_dense"][0])
        gamma, beta, moving_mean, moving_variance = frozen[f"hidden{i}_bn"][:4]
        np.testing.assert_array_equal(gamma, reference[f"hidden{i}_bn"][0])
        np.testing.assert_array_equal(beta, reference[f"hidden{i}_bn"][1])
        np.testing.assert_allclose(moving_mean, expected[i][0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(moving_variance, expected[i][1], rtol=1e-4, atol=1e-6)
    # Unfrozen after step 50: the backbone trained, its BN layers normalized
    # with batch statistics and moved their averages.
    unfrozen = checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-80"))
    assert not np.allclose(unfrozen["hidden1_dense"][0], reference["hidden1_dense"][0])
    assert not np.allclose(unfrozen["hidden1_bn"][2], frozen["hidden1_bn"][2])


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    """A run of 40 steps with population statistics, extended to 60 in the
    same workdir; an uninterrupted run of 60; the first run's checkpoint."""
    base = tmp_path_factory.mktemp("extended")
    workdir, reference = str(base / "extended"), str(base / "uninterrupted")
    first = training.train(config(num_train_steps=40, population_batches=5), workdir)
    checkpoint = os.path.join(workdir, "checkpoints", "ckpt-40")
    after_first = {name: values for name, values in checkpoint_values(checkpoint).items()}
    restored_first = runs.restore(workdir)
    training.train(config(num_train_steps=60, population_batches=5), workdir)
    training.train(config(num_train_steps=60, population_batches=5), reference)
    return workdir, reference, first, after_first, restored_first


def test_extending_a_finished_run_matches_an_uninterrupted_run(extended):
    workdir, reference, first, after_first, restored_first = extended
    assert first["step"] == 40 and first["inference_statistics"] == "population"
    assert first["population_checkpoint"] == "population/ckpt-40"
    assert restored_first.step == 40 and restored_first.inference_statistics == "population"
    for name in ("hidden1_bn", "hidden2_bn", "hidden3_bn"):
        assert after_first[name][6] == 0.0  # The training checkpoint chose moving.
    rows, want = runs.read_metrics(workdir), runs.read_metrics(reference)
    assert [r["step"] for r in rows] == [0, 20, 40, 60]
    for got, expected in zip(rows, want):
        assert got.keys() == expected.keys()
        for key in got:
            assert got[key] == expected[key] or (np.isnan(got[key]) and np.isnan(expected[key])), (
                got["step"], key, got[key], expected[key])
    assert runs.read_final(workdir) == runs.read_final(reference)
    assert sorted(os.listdir(os.path.join(workdir, "population"))) == sorted(
        os.listdir(os.path.join(reference, "population")))


def test_bad_weights_are_one_error_line_and_nothing_is_written(weights, tmp_path, capsys):
    from bn_zoo.training import cli

    other = str(tmp_path / "tiny.weights.h5")
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save_weights(other)
    not_weights = tmp_path / "notes.txt"
    not_weights.write_text("no weights here\n")
    cases = [
        ({"model.weights": str(tmp_path / "missing.weights.h5")},
         r"ERROR \(ConfigError\): config.model.weights='.*missing.weights.h5' is neither a "
         r"registered weights name of 'bn_mlp' \(mnist\) nor an existing file or trainer "
         r"workdir\."),
        ({"model.weights": other},
         r"ERROR \(ConfigError\): config.model.weights: no layer of model '.*' matches "
         r".*tiny.weights.h5: its 1 layer\(s\) \(layers/dense\) have other classes or shapes\."),
        ({"model.weights": str(not_weights)},
         r"ERROR \(ConfigError\): config.model.weights='.*notes.txt' is not a "
         r"'\*.weights.h5' or '\*.keras' file"),
        ({"model.weights": str(tmp_path)},
         r"ERROR \(ConfigError\): config.model.weights='.*': .* has no config.json: not a "
         r"trainer workdir\."),
        ({"model.freeze": "head"},
         r"ERROR \(ConfigError\): config.model.freeze must be one of \('none', 'backbone', "
         r"'batch_norm'\); got 'head'\."),
        ({"model.freeze_steps": 0},
         r"ERROR \(ConfigError\): config.model.freeze_steps must be None \(frozen for the "
         r"whole run\) or an integer > 0 \(the step that unfreezes\); got 0\."),
        ({"model.kwargs.weights": "mnist"},
         r"ERROR \(ConfigError\): config.model.kwargs must not set 'weights': set "
         r"config.model.weights"),
    ]
    for fields, message in cases:
        workdir = tmp_path / "run"
        before = snapshot(str(tmp_path))
        c = config(num_train_steps=20)
        for path, value in fields.items():
            if path == "model.kwargs.weights":
                c.model.kwargs.weights = value
            else:
                config_flags.set_field(c, path, value)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            cli.run(lambda: training.train(c, str(workdir)))
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("ERROR")]
        assert exited.value.code == 1 and len(lines) == 1, err
        assert re.match(message, lines[0]), lines[0]
        assert snapshot(str(tmp_path)) == before and not workdir.exists()


def nested(classes=10, classifier_activation="softmax", seed=None):
    """A backbone model nested in the classifier (import path
    'test_finetune:nested')."""
    init = keras.initializers.GlorotUniform(seed)
    backbone = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                 keras.layers.Dense(16, kernel_initializer=init),
                                 bn_zoo.layers.BatchNormalization(),
                                 keras.layers.Activation("relu")], name="backbone")
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Dense(classes, activation=classifier_activation,
                                 kernel_initializer=init, name="predictions")(backbone(inputs))
    return keras.Model(inputs, outputs)


def test_a_keras_file_of_a_nested_backbone_and_a_workdir_load_what_they_hold(extended, tmp_path):
    from bn_zoo.training import warm_start

    source = nested(classes=1000, seed=1)
    rng = np.random.default_rng(5)
    for variable in source.weights:
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype(variable.dtype))
    population.set_inference_statistics(source, "population")
    path = str(tmp_path / "nested.keras")
    source.save(path)
    target = nested(classes=3, seed=2)
    head = np.asarray(target.get_layer("predictions").kernel)
    loaded = warm_start.load(target, "test_finetune:nested", path)
    assert len(loaded.loaded) == 2 + 8 and [p for p, _ in loaded.new] == [
        "predictions/kernel", "predictions/bias"]
    with zipfile_weights(path) as f:
        backbone = f["layers/sequential/layers"] if "layers/sequential" in f else f[
            "layers/functional/layers"]
        np.testing.assert_array_equal(target.get_layer("backbone").layers[1].kernel,
                                      backbone["dense/vars/0"])
        bn = target.get_layer("backbone").layers[2]
        for i, variable in enumerate(bn.weights):
            if variable is not bn.use_population_statistics:
                np.testing.assert_array_equal(variable, backbone[f"batch_normalization/vars/{i}"])
    # The file chose population statistics; training uses the moving averages.
    assert loaded.reset_statistics == (bn.name,) and bn.inference_statistics == "moving"
    np.testing.assert_array_equal(target.get_layer("predictions").kernel, head)

    # Another workdir: its newest checkpoint, as runs.restore gives it, but the
    # BN layers choose the moving averages to train with.
    workdir = extended[0]
    model = bn_zoo.create_model("bn_mlp", weights=None, classifier_activation=None)
    loaded = warm_start.load(model, "bn_mlp", workdir)
    assert loaded.new == () and len(loaded.loaded) == 29
    assert loaded.reset_statistics == ("hidden1_bn", "hidden2_bn", "hidden3_bn")
    expected = checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-60"))
    for name, values in expected.items():
        if name.endswith("_bn"):
            values = values[:4]  # population ones: from population/ckpt-60
        for variable, value in zip(model.get_layer(name).weights, values):
            np.testing.assert_array_equal(variable, value, err_msg=name)
    assert all(l.inference_statistics == "moving"
               for l in population.batch_normalization_layers(model))


class zipfile_weights:
    """The model.weights.h5 of a .keras file, opened with h5py."""

    def __init__(self, path):
        import io
        import zipfile

        with zipfile.ZipFile(path) as archive:
            self._bytes = io.BytesIO(archive.read("model.weights.h5"))

    def __enter__(self):
        self._file = h5py.File(self._bytes, "r")
        return self._file

    def __exit__(self, *exc):
        self._file.close()


def test_cosine_schedule_with_warm_up_and_adamw_decays_kernels_only():
    from bn_zoo.training import optimizers

    c = training.resolve(config(**{"num_train_steps": 100, "optimizer.name": "adamw",
                                   "optimizer.base_learning_rate": 0.002,
                                   "optimizer.weight_decay": 0.05, "schedule.name": "cosine",
                                   "schedule.warmup_steps": 10, "schedule.alpha": 0.1}))
    assert c.schedule.decay_steps == 90
    schedule = optimizers.learning_rate_schedule(c)
    peak = 0.002 * c.global_batch_size / c.optimizer.reference_batch_size
    for step in (0, 5, 10, 55, 100, 150):
        if step < 10:
            expected = peak * step / 10
        else:
            t = min(step - 10, 90) / 90
            expected = peak * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * t)))
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5), step

    model = bn_zoo.create_model("bn_mlp", weights=None, classifier_activation=None)
    optimizer = optimizers.create_optimizer(c, model.trainable_variables)
    optimizer.build(model.trainable_variables)
    for _ in range(11):  # Past the warm-up (the rate is 0 at step 0).
        before = [np.asarray(v, np.float64) for v in model.trainable_variables]
        rate = float(schedule(int(optimizer.iterations)))
        optimizer.apply([tf.zeros_like(v) for v in model.trainable_variables],
                        model.trainable_variables)
    for variable, old in zip(model.trainable_variables, before):
        if variable.path.endswith("kernel"):
            np.testing.assert_allclose(variable, old * (1 - rate * 0.05), rtol=1e-6)
        else:  # Biases, gamma, beta: no decay; a zero gradient moves nothing.
            np.testing.assert_array_equal(variable, old)


def test_a_run_written_before_the_fine_tuning_fields_still_resumes():
    """A config.json without model.weights, model.freeze*, schedule.name,
    warmup_steps and alpha counts them as their defaults; a value that
    differs from the default is still refused."""
    from bn_zoo.training import config as config_lib

    resolved = training.resolve(config(num_train_steps=40))
    old = config_lib.to_dict(resolved)
    for key in ("weights", "freeze", "freeze_steps", "freeze_estimate_batches"):
        del old["model"][key]
    for key in ("name", "warmup_steps", "alpha"):
        del old["schedule"][key]
    assert config_lib.incompatible_fields(old, resolved) == []
    cosine = training.resolve(config(**{"num_train_steps": 40, "schedule.name": "cosine"}))
    assert "schedule.name" in config_lib.incompatible_fields(old, cosine)
