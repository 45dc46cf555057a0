"""The trainer on real MNIST: a short Figure 1 run writes every
output, its numbers agree with an independent evaluation in numpy, and bad
configs or a diverging loss stop with one clear error and nothing overwritten.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from bn_zoo import population, runs, training
from bn_zoo.data import mnist
from bn_zoo.paper.figure1 import run_figure1
from bn_zoo.training import summaries
from configs import figure1 as figure1_config
from configs import mnist as mnist_configs

from file_tree import snapshot

STEPS, EVERY = 300, 100
PROBE_EXAMPLES = 200


def small(config):
    """A few hundred steps on a 6,000-image slice of the training set."""
    config.num_train_steps = STEPS
    config.steps_per_loop = EVERY
    config.log_every_steps = EVERY
    config.eval_every_steps = EVERY
    config.checkpoint_every_steps = EVERY
    config.data.train_split = "train[:6000]"
    config.probe.num_examples = PROBE_EXAMPLES
    config.population_batches = 20
    return config



@pytest.fixture(scope="module")
def figure1_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("figure1"))
    config = figure1_config.get_config()
    small(config.train)
    summary = run_figure1(config, workdir)
    return workdir, summary


def test_short_run_writes_checkpoints_metrics_events_and_png(figure1_run):
    workdir, summary = figure1_run
    for network in ("mlp", "bn_mlp"):
        run = os.path.join(workdir, network)
        assert tf.train.latest_checkpoint(os.path.join(run, "checkpoints")).endswith("ckpt-300")
        rows = runs.read_csv(os.path.join(run, "metrics.csv"))
        assert list(rows[0]) == [
            "step", "train_loss", "train_accuracy", "eval_loss", "eval_accuracy",
            "eval_top5_accuracy", "learning_rate", "probe_p15", "probe_p50", "probe_p85",
        ]
        assert [r["step"] for r in rows] == [0, 100, 200, 300]
        assert all(np.isfinite(r["eval_accuracy"]) for r in rows)
        assert all(r["probe_p15"] <= r["probe_p50"] <= r["probe_p85"] for r in rows)
        assert rows[-1]["eval_loss"] < rows[0]["eval_loss"]
        assert rows[-1]["eval_accuracy"] > 0.2  # Chance is 0.1.
        events = os.listdir(os.path.join(run, "tensorboard"))
        assert events and events[0].startswith("events.out.tfevents")
        scalars = summaries.read_scalars(os.path.join(run, "tensorboard", events[0]))
        assert [s for s, _ in scalars["eval/accuracy"]] == [0, 100, 200, 300]
        assert [s for s, _ in scalars["train/loss"]] == [100, 200, 300]
        assert scalars["eval/accuracy"][-1][1] == pytest.approx(rows[-1]["eval_accuracy"])
    image = __import__("matplotlib.image").image.imread(os.path.join(workdir, "figure1.png"))
    assert image.ndim == 3 and image.shape[1] > 2 * image.shape[0]  # Three panels side by side.
    combined = runs.read_csv(os.path.join(workdir, "metrics.csv"))
    assert len(combined) == 8
    bn_final = runs.read_json(os.path.join(workdir, "bn_mlp", "final.json"))
    assert bn_final["eval_accuracy_moving"] > 0.8  # BN learns fast (Figure 1(a)).
    assert bn_final["inference_statistics"] == "population"
    assert summary["bn_accuracy_population"] == bn_final["eval_accuracy_population"]


def _test_set():
    images, labels = mnist.load("test", os.environ.get("TFDS_DATA_DIR"))
    return images.astype("float32") / 255.0, labels


def test_metrics_match_an_independent_evaluation(figure1_run):
    """Accuracy and probe percentiles of the last row, recomputed in numpy
    from the restored weights on the whole test set."""
    workdir, _ = figure1_run
    x, y = _test_set()
    for network in ("mlp", "bn_mlp"):
        run = os.path.join(workdir, network)
        last = runs.read_csv(os.path.join(run, "metrics.csv"))[-1]
        model = training.restore_model(run, classifier_activation=None)
        if network == "bn_mlp":
            population.set_inference_statistics(model, "moving")  # What the row used.
        logits = model.predict(x, batch_size=2500, verbose=0)
        assert np.mean(np.argmax(logits, -1) == y) == pytest.approx(last["eval_accuracy"], abs=1e-6)
        shifted = logits - logits.max(-1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        loss = -np.mean(log_softmax[np.arange(len(y)), y])
        assert loss == pytest.approx(last["eval_loss"], rel=1e-4)
        probe = keras.Model(model.inputs, model.get_layer("hidden3_sigmoid").input)
        values = probe.predict(x[:PROBE_EXAMPLES], verbose=0)[:, 0]
        np.testing.assert_allclose(
            np.percentile(values, [15, 50, 85]),
            [last["probe_p15"], last["probe_p50"], last["probe_p85"]], rtol=1e-4, atol=1e-5,
        )


def test_restore_model_uses_population_statistics(figure1_run):
    workdir, _ = figure1_run
    run = os.path.join(workdir, "bn_mlp")
    final = runs.read_json(os.path.join(run, "final.json"))
    model = training.restore_model(run)
    layers = population.batch_normalization_layers(model)
    assert len(layers) == 3
    assert all(l.inference_statistics == "population" for l in layers)
    # The population statistics differ from the moving averages they replace.
    assert not np.allclose(layers[0].population_mean.numpy(), layers[0].moving_mean.numpy())
    x, y = _test_set()
    probabilities = model.predict(x, batch_size=2500, verbose=0)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)  # softmax by default
    accuracy = np.mean(np.argmax(probabilities, -1) == y)
    assert accuracy == pytest.approx(final["eval_accuracy_population"], abs=1e-6)


def test_rerun_of_a_finished_run_changes_nothing(figure1_run):
    workdir, _ = figure1_run
    run = os.path.join(workdir, "mlp")
    before = snapshot(run)
    config = small(mnist_configs.get_config("mlp"))
    final = training.train(config, run)
    assert final == runs.read_json(os.path.join(run, "final.json"))
    assert snapshot(run) == before


def test_incompatible_config_in_existing_workdir_is_refused(figure1_run):
    workdir, _ = figure1_run
    run = os.path.join(workdir, "mlp")
    before = snapshot(run)
    config = small(mnist_configs.get_config("mlp"))
    config.optimizer.base_learning_rate = 0.01
    with pytest.raises(training.WorkdirError, match="optimizer.base_learning_rate"):
        training.train(config, run)
    assert snapshot(run) == before


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    config = small(mnist_configs.get_config("mlp"))
    config.model.name = "bn_mlp"
    config.probe.layer = ""
    config.steps_per_loop = config.log_every_steps = config.eval_every_steps = 10
    config.checkpoint_every_steps = 10
    config.data.eval_split = "test[:1000]"  # Finite or not: a slice tells.
    config.eval_batch_size = 1000
    # The learning rate grows 10,000x every 10 steps, to Inf (float32) at step 100.
    config.optimizer.base_learning_rate = 0.1
    config.schedule.decay_rate = 1e4
    config.schedule.decay_steps = 10
    with pytest.raises(training.NonFiniteLossError, match="NaN/Inf.*last good checkpoint"):
        training.train(config, str(tmp_path))
    path = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert path is not None
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.all(np.isfinite(value)), name
    rows = runs.read_csv(str(tmp_path / "metrics.csv"))
    step = int(path.rsplit("-", 1)[1])
    assert rows[-1]["step"] == step and np.isfinite(rows[-1]["eval_loss"])


def test_global_batch_that_does_not_divide_among_replicas(tmp_path):
    config = small(mnist_configs.get_config("mlp"))
    config.strategy = "mirrored"  # 2 logical CPUs (tests/conftest.py).
    config.global_batch_size = 61
    with pytest.raises(training.ConfigError, match="61 does not divide among the 2 replicas"):
        training.train(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("field, value, message", [
    ("num_train_steps", -5, "num_train_steps must be a positive integer"),
    ("optimizer.name", "adagrad", "optimizer.name must be one of"),
    ("mixed_precision", "float8", "mixed_precision must be one of"),
])
def test_bad_values_are_refused(tmp_path, field, value, message):
    config = mnist_configs.get_config("mlp").to_dict()
    tree = config
    *parents, last = field.split(".")
    for key in parents:
        tree = tree[key]
    tree[last] = value
    with pytest.raises(training.ConfigError, match=message):
        training.train(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_unknown_field_suggests_the_right_one():
    config = mnist_configs.get_config("mlp").to_dict()
    config["optimizer"]["learning_rate"] = 0.1
    with pytest.raises(training.ConfigError, match="optimizer.learning_rate.*base_learning_rate"):
        training.resolve(config)


def test_unset_fields_come_from_the_registry_recipe():
    import bn_zoo

    recipe = bn_zoo.model_info("bn_mlp").recipe
    config = training.resolve(mnist_configs.get_config("mlp"))
    assert config.global_batch_size == recipe["batch_size_per_replica"] == 60
    assert config.num_train_steps == recipe["train_steps"] == 50_000
    assert config.optimizer.base_learning_rate == recipe["base_learning_rate"]
    assert config.schedule.decay_rate == recipe["lr_decay_rate"]
