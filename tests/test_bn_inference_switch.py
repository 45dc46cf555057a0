"""Switching a BN layer between its moving and its population statistics takes
effect everywhere, without a retrace or a recompile.

The choice is the variable `use_population_statistics`, read at run time. The
matrix crosses every way of switching (the `inference_statistics` attribute,
`population.set_inference_statistics`, `population.estimate(activate=True)`,
`load_weights`, `keras.saving.load_model`, `tf.train.Checkpoint.restore`), in
both directions, with every entry point (`model(x)`, `predict`, `evaluate`, a
user's `tf.function`, a reloaded model), each traced with the old choice
before the switch. The model holds a 4-D BN (the fused inference kernel) and a
2-D BN (the generic path); the reference is numpy in float64. Also: the
reported `predict` bug, invalid values, files written before the flag existed,
XLA, and `tf.distribute.MirroredStrategy`.
"""

import os
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from bn_zoo import population
from bn_zoo.layers import BatchNormalization
from bn_zoo.training import checkpoints

EPSILON = 1e-3
TOL = dict(rtol=1e-4, atol=1e-4)
INPUT_SHAPE = (3, 3, 2)
BATCH = 5
ESTIMATE_BATCHES = 2
BN_NAMES = ("bn_conv", "bn_dense")
STATISTICS = ("gamma", "beta", "moving_mean", "moving_variance",
              "population_mean", "population_variance")
FLAG = {"moving": 0.0, "population": 1.0}
OTHER = {"moving": "population", "population": "moving"}


@keras.saving.register_keras_serializable(package="test_bn_inference_switch")
class TraceCounter(keras.layers.Layer):
    """The identity; counts the inference-mode calls it sees, which inside a
    traced function are its traces."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.traces = 0

    def call(self, inputs, training=None):
        if not training:
            self.traces += 1
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


# ----------------------------------------------------------------- the model
def build_model(statistics="moving", seed=0, compile=True):
    """Input → 1×1 Conv2D → BN (4-D) → Flatten → Dense → BN (2-D), compiled
    with an MSE loss, every weight drawn from `seed` (so two models built with
    one seed differ only in their inference statistics)."""
    inputs = keras.Input(INPUT_SHAPE, name="x")
    x = TraceCounter(name="trace_counter")(inputs)
    x = keras.layers.Conv2D(3, 1, name="conv")(x)
    x = BatchNormalization(
        epsilon=EPSILON, inference_statistics=statistics, name="bn_conv")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(4, name="dense")(x)
    x = BatchNormalization(
        epsilon=EPSILON, inference_statistics=statistics, name="bn_dense")(x)
    model = keras.Model(inputs, x)
    randomize(model, seed)
    if compile:
        model.compile(optimizer="sgd", loss="mse")
    return model


def randomize(model, seed):
    """Random weights, with population statistics clearly apart from the
    moving ones."""
    rng = np.random.default_rng(seed)

    def put(variable, values):
        variable.assign(np.asarray(values, "float32").reshape(variable.shape))

    for name in ("conv", "dense"):
        layer = model.get_layer(name)
        put(layer.kernel, rng.normal(0.0, 0.7, layer.kernel.shape))
        put(layer.bias, rng.normal(0.0, 0.5, layer.bias.shape))
    for name in BN_NAMES:
        layer = model.get_layer(name)
        c = layer.gamma.shape[0]
        moving_mean = rng.normal(size=c)
        moving_variance = rng.uniform(0.5, 2.0, c)
        put(layer.gamma, rng.uniform(0.5, 2.0, c))
        put(layer.beta, rng.normal(size=c))
        put(layer.moving_mean, moving_mean)
        put(layer.moving_variance, moving_variance)
        put(layer.population_mean,
            moving_mean + rng.choice([-1.0, 1.0], c) * rng.uniform(0.5, 1.5, c))
        put(layer.population_variance, moving_variance * rng.uniform(2.0, 4.0, c))


def bn_layers(model):
    return [model.get_layer(name) for name in BN_NAMES]


def snapshot(model):
    """Every weight but the choice, as float64 numpy arrays."""
    params = {}
    for name in ("conv", "dense"):
        layer = model.get_layer(name)
        params[name, "kernel"] = np.asarray(layer.kernel, np.float64)
        params[name, "bias"] = np.asarray(layer.bias, np.float64)
    for layer in bn_layers(model):
        for v in STATISTICS:
            params[layer.name, v] = np.asarray(getattr(layer, v), np.float64)
    return params


def moments_of(params, name, statistics):
    prefix = "moving" if statistics == "moving" else "population"
    return params[name, f"{prefix}_mean"], params[name, f"{prefix}_variance"]


def bn_reference(h, params, name, statistics):
    """y = γ (x − E[x]) / √(Var[x] + ε) + β over the last axis."""
    mean, variance = moments_of(params, name, statistics)
    return (params[name, "gamma"] * (h - mean) / np.sqrt(variance + EPSILON)
            + params[name, "beta"])


def reference(params, x, statistics):
    """The model's inference output in float64 numpy."""
    h = np.asarray(x, np.float64) @ params["conv", "kernel"][0, 0] + params["conv", "bias"]
    h = bn_reference(h, params, "bn_conv", statistics)
    h = h.reshape(len(x), -1) @ params["dense", "kernel"] + params["dense", "bias"]
    return bn_reference(h, params, "bn_dense", statistics)


def make_inputs(seed=100):
    return np.random.default_rng(seed).normal(size=(BATCH, *INPUT_SHAPE)).astype("float32")


def estimate_batches(seed=200):
    """Training batches whose statistics are far from the model's."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(6, *INPUT_SHAPE)) * 1.5 + 0.7).astype("float32")
            for _ in range(ESTIMATE_BATCHES)]


def numpy_estimate(params, batches):
    """What `population.estimate` must write: over the training network's
    mini-batches, E[x] = mean of μ_B, Var[x] = mean of m'/(m'−1) σ²_B."""
    sums = {name: [0.0, 0.0] for name in BN_NAMES}

    def train_bn(h, name):
        flat = h.reshape(-1, h.shape[-1])
        m = len(flat)
        mean, variance = flat.mean(0), flat.var(0)
        sums[name][0] = sums[name][0] + mean
        sums[name][1] = sums[name][1] + variance * m / (m - 1)
        return (params[name, "gamma"] * (h - mean) / np.sqrt(variance + EPSILON)
                + params[name, "beta"])

    for x in batches:
        h = np.asarray(x, np.float64) @ params["conv", "kernel"][0, 0] + params["conv", "bias"]
        h = train_bn(h, "bn_conv")
        h = h.reshape(len(x), -1) @ params["dense", "kernel"] + params["dense", "bias"]
        train_bn(h, "bn_dense")
    estimated = dict(params)
    for name, (mean, variance) in sums.items():
        estimated[name, "population_mean"] = mean / len(batches)
        estimated[name, "population_variance"] = variance / len(batches)
    return estimated


def check_layers(model, statistics, params):
    """The choice reads back everywhere, and `inference_affine` uses it."""
    for layer in bn_layers(model):
        assert layer.inference_statistics == statistics, layer.name
        assert layer.get_config()["inference_statistics"] == statistics, layer.name
        assert float(layer.use_population_statistics.numpy()) == FLAG[statistics]
        mean, variance = moments_of(params, layer.name, statistics)
        a = params[layer.name, "gamma"] / np.sqrt(variance + EPSILON)
        b = params[layer.name, "beta"] - a * mean
        got_a, got_b = layer.inference_affine()
        np.testing.assert_allclose(got_a, a, **TOL)
        np.testing.assert_allclose(got_b, b, **TOL)


def check_params(model, params, tol=1e-6):
    for key, value in snapshot(model).items():
        np.testing.assert_allclose(value, params[key], rtol=tol, atol=tol, err_msg=str(key))


# -------------------------------------------------------------- entry points
class Probe:
    """One entry point of one model: runs it, and records what a retrace or a
    recompile would change."""

    def __init__(self, entry, model, x, y):
        self.entry, self.model, self.x, self.y = entry, model, x, y
        if entry in ("tf_function", "reloaded"):
            self.fn = tf.function(lambda t: model(t, training=False))

    def run(self):
        model, x = self.model, self.x
        if self.entry == "call":
            return np.asarray(model(x))
        if self.entry == "predict":
            return model.predict(x, batch_size=len(x), verbose=0)
        if self.entry == "evaluate":
            return model.evaluate(x, self.y, batch_size=len(x), verbose=0)
        if self.entry in ("tf_function", "reloaded"):
            return self.fn(tf.constant(x)).numpy()
        raise AssertionError(self.entry)

    def traces(self):
        model = self.model
        if self.entry == "call":
            return {}  # eager: nothing traced
        state = {"traces of the model": model.get_layer("trace_counter").traces}
        if self.entry == "predict":
            state["predict_function"] = model.predict_function
            state["its tracing count"] = (
                model.predict_function.experimental_get_tracing_count())
        elif self.entry == "evaluate":
            state["test_function"] = model.test_function
        elif self.entry in ("tf_function", "reloaded"):
            state["tracing count"] = self.fn.experimental_get_tracing_count()
        return state

    def check(self, expected):
        """Runs the entry point; its result must be the model's output
        `expected` (for evaluate: its MSE against the targets)."""
        out = self.run()
        if self.entry == "evaluate":
            np.testing.assert_allclose(
                out, np.mean((expected - self.y) ** 2), rtol=1e-3, atol=1e-7)
        else:
            np.testing.assert_allclose(out, expected, **TOL)


def assert_not_retraced(before, after, entry):
    for key, value in before.items():
        if callable(value):
            assert after[key] is value, f"{entry}: {key} was reset"
        else:
            assert after[key] == value, f"{entry}: {key} {value} -> {after[key]}"


# ------------------------------------------------------------------ switches
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """`build_model(statistics)` (seed 0) in every format, for each choice."""
    files = {}
    for statistics in ("moving", "population"):
        directory = tmp_path_factory.mktemp(statistics)
        model = build_model(statistics)
        files[statistics] = {
            "keras": str(directory / "model.keras"),
            "weights": str(directory / "model.weights.h5"),
            "checkpoint": tf.train.Checkpoint(model=model).save(str(directory / "ckpt")),
        }
        model.save(files[statistics]["keras"])
        model.save_weights(files[statistics]["weights"])
    return files


def switch(method, model, target, saved):
    """Switches `model` to `target` statistics; returns the model to use then
    (a new one for load_model). The loading methods load what a model that
    differs from `model` only in its choice saved."""
    if method == "attribute":
        for layer in bn_layers(model):
            layer.inference_statistics = target
        return model
    if method == "set_inference_statistics":
        population.set_inference_statistics(model, target)
        return model
    if method == "estimate":
        assert target == "population"
        assert population.estimate(
            model, estimate_batches(), ESTIMATE_BATCHES, activate=True) == 2
        return model
    if method == "load_weights":
        model.load_weights(saved[target]["weights"])
        return model
    if method == "load_model":
        return keras.saving.load_model(saved[target]["keras"])
    if method == "checkpoint":
        tf.train.Checkpoint(model=model).restore(
            saved[target]["checkpoint"]).assert_existing_objects_matched()
        return model
    raise AssertionError(method)


METHODS = ("attribute", "set_inference_statistics", "estimate", "load_weights",
           "load_model", "checkpoint")
# estimate(activate=True) only ever activates the population statistics.
SWITCHES = [(method, start) for method in METHODS for start in ("moving", "population")
            if not (method == "estimate" and start == "population")]
ENTRIES = ("call", "predict", "evaluate", "tf_function", "reloaded")


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(
    "method,start", SWITCHES,
    ids=[f"{m}-{s}_to_{OTHER[s]}" for m, s in SWITCHES])
def test_switch_takes_effect_without_retrace(method, start, entry, saved, tmp_path):
    target = OTHER[start]
    x = make_inputs()
    if entry == "reloaded":
        # The model under test comes from a .keras file and runs in a user's
        # tf.function; after the switch it is saved and reloaded again.
        model = keras.saving.load_model(saved[start]["keras"])
    else:
        model = build_model(start)
    params = snapshot(model)
    target_params, tol = params, 1e-6
    if method == "estimate":
        target_params, tol = numpy_estimate(params, estimate_batches()), 1e-4
    expected = {start: reference(params, x, start),
                target: reference(target_params, x, target)}
    assert np.abs(expected[start] - expected[target]).max() > 0.1  # the check can fail

    check_layers(model, start, params)
    probe = Probe(entry, model, x, y=expected[target].astype("float32"))
    probe.check(expected[start])  # warm-up: traced with the old choice
    if entry == "evaluate":
        assert np.mean((expected[start] - expected[target]) ** 2) > 0.01
    before = probe.traces()

    switched = switch(method, model, target, saved)

    if switched is model:
        probe.check(expected[target])
        assert_not_retraced(before, probe.traces(), entry)
    else:  # load_model: the old model is untouched, the new one has the choice
        probe.check(expected[start])
        assert_not_retraced(before, probe.traces(), entry)
        probe = Probe(entry, switched, x, probe.y)
        probe.check(expected[target])
    check_layers(switched, target, target_params)
    check_params(switched, target_params, tol)
    if entry == "reloaded":
        np.testing.assert_allclose(switched(x), expected[target], **TOL)
        # The switched choice travels with a .keras file and with the weights.
        path = str(tmp_path / "switched.keras")
        switched.save(path)
        again = keras.saving.load_model(path)
        check_layers(again, target, target_params)
        np.testing.assert_allclose(again(x), expected[target], **TOL)
        path = str(tmp_path / "switched.weights.h5")
        switched.save_weights(path)
        fresh = build_model(start, seed=1)
        fresh.load_weights(path)
        check_layers(fresh, target, target_params)
        np.testing.assert_allclose(fresh(x), expected[target], **TOL)


# ------------------------------------------------------------- the bug report
def test_reported_bug_predict_uses_population_after_attribute_switch():
    """A one-channel model: predict, set E[x]=3 and Var[x]=4, switch by the
    attribute: predict returned 2.9985 (the moving statistics) where model(x)
    returned 0."""
    inputs = keras.Input((1,))
    layer = BatchNormalization()
    model = keras.Model(inputs, layer(inputs))
    x = np.array([[3.0]], "float32")
    model.predict(x, verbose=0)
    layer.population_mean.assign([3.0])
    layer.population_variance.assign([4.0])
    layer.inference_statistics = "population"
    np.testing.assert_allclose(model(x), [[0.0]], atol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), [[0.0]], atol=1e-6)
    # And back: (3 − 0)/√(1 + ε).
    layer.inference_statistics = "moving"
    np.testing.assert_allclose(
        model.predict(x, verbose=0), [[3.0 / np.sqrt(1.0 + 1e-3)]], rtol=1e-6)


# ------------------------------------------------------------ invalid values
@pytest.mark.parametrize("start", ["moving", "population"])
def test_invalid_value_raises_and_changes_nothing(start):
    x = make_inputs()
    model = build_model(start)
    params = snapshot(model)
    probe = Probe("predict", model, x, None)
    probe.check(reference(params, x, start))
    before = probe.traces()
    for bad in ("running", "Population", None, 1.0):
        for layer in bn_layers(model):
            with pytest.raises(ValueError, match="inference_statistics"):
                layer.inference_statistics = bad
    with pytest.raises(ValueError, match="statistics"):
        population.set_inference_statistics(model, "running")
    check_layers(model, start, params)
    probe.check(reference(params, x, start))
    assert_not_retraced(before, probe.traces(), "predict")


# ----------------------------------------------------- estimate, not activated
@pytest.mark.parametrize("start", ["moving", "population"])
def test_estimate_without_activate_keeps_the_choice(start):
    """activate=False keeps each layer's choice; under "population" the new
    population statistics reach the already-traced predict."""
    x = make_inputs()
    model = build_model(start)
    probe = Probe("predict", model, x, None)
    probe.check(reference(snapshot(model), x, start))
    before = probe.traces()
    population.estimate(model, estimate_batches(), ESTIMATE_BATCHES, activate=False)
    params = snapshot(model)
    check_layers(model, start, params)
    probe.check(reference(params, x, start))
    assert_not_retraced(before, probe.traces(), "predict")


# ------------------------------------------ files written before the flag
def strip_flag(weights_path):
    """Rewrites a .weights.h5 file as the version before the flag wrote it: BN
    layers without their last two variables, `use_population_statistics` and
    `moving_statistics_updates` (added after it)."""
    with h5py.File(weights_path, "r+") as f:
        # Keras names the groups by class and position, not by layer name.
        groups = [g["vars"] for name, g in f["layers"].items()
                  if name.startswith("batch_normalization")]
        assert len(groups) == len(BN_NAMES)
        for group in groups:
            # The layout this relies on: 6 statistics, then the scalar flag and
            # the scalar update count.
            assert sorted(group.keys()) == [str(i) for i in range(8)]
            assert [group[str(i)].shape for i in range(8)] == [group["0"].shape] * 6 + [()] * 2
            del group["6"], group["7"]
            assert len(group) == 6


@pytest.mark.parametrize("configured", ["moving", "population"])
def test_weights_file_without_the_flag_loads_and_keeps_configured_choice(
        configured, tmp_path):
    x = make_inputs()
    source = build_model(OTHER[configured], seed=3)  # the other choice, other weights
    path = str(tmp_path / "old.weights.h5")
    source.save_weights(path)
    strip_flag(path)
    source_params = snapshot(source)

    model = build_model(configured, seed=4)
    probe = Probe("predict", model, x, None)
    probe.check(reference(snapshot(model), x, configured))
    before = probe.traces()
    model.load_weights(path)
    check_params(model, source_params)
    check_layers(model, configured, source_params)
    probe.check(reference(source_params, x, configured))
    assert_not_retraced(before, probe.traces(), "predict")


@pytest.mark.parametrize("configured", ["moving", "population"])
def test_keras_file_without_the_flag_loads_with_its_configured_choice(
        configured, tmp_path):
    x = make_inputs()
    source = build_model(configured, seed=5)
    new_path, old_path = str(tmp_path / "new.keras"), str(tmp_path / "old.keras")
    source.save(new_path)
    weights = str(tmp_path / "model.weights.h5")
    with zipfile.ZipFile(new_path) as new, zipfile.ZipFile(old_path, "w") as old:
        for info in new.infolist():
            if info.filename == "model.weights.h5":
                with open(weights, "wb") as f:
                    f.write(new.read(info))
                strip_flag(weights)
                with open(weights, "rb") as f:
                    old.writestr(info, f.read())
            else:
                old.writestr(info, new.read(info))
    os.remove(weights)

    loaded = keras.saving.load_model(old_path)
    params = snapshot(source)
    check_params(loaded, params)
    check_layers(loaded, configured, params)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), reference(params, x, configured), **TOL)


def test_checkpoint_without_the_flag_restores_as_bn_zoo_training_does(tmp_path):
    """A `tf.train.Checkpoint` of a model written before the flag existed
    restores through `bn_zoo.training.checkpoints.restore` (what
    `Checkpointer.restore_latest` and `restore_model` use), keeping the
    configured choice.

    The old checkpoint is written from plain trackables with the object graph
    of the previous version's model, `model/_operations/<i>/<variable>`.
    """
    source = build_model("moving", seed=6, compile=False)
    params = snapshot(source)
    operations = []
    for layer in source._operations:
        node = tf.Module()
        for v in layer.weights:
            if v.name != "use_population_statistics":
                # Conv2D and Dense hold their kernel as `_kernel`.
                setattr(node, "_kernel" if v.name == "kernel" else v.name,
                        tf.Variable(v.numpy()))
        operations.append(node)
    old_model = tf.Module()
    old_model._operations = operations
    prefix = tf.train.Checkpoint(model=old_model).save(str(tmp_path / "old" / "ckpt"))
    names = [name for name, _ in tf.train.list_variables(prefix)]
    assert "model/_operations/3/population_mean/.ATTRIBUTES/VARIABLE_VALUE" in names
    assert not any("use_population_statistics" in name for name in names)

    model = build_model("population", seed=7, compile=False)
    checkpoints.restore(tf.train.Checkpoint(model=model), prefix, model)
    check_params(model, params)
    check_layers(model, "population", params)
    # A checkpoint that carries the choice restores it, and is checked strictly.
    population.set_inference_statistics(model, "moving")
    prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "new" / "ckpt"))
    other = build_model("population", seed=8, compile=False)
    checkpoints.restore(tf.train.Checkpoint(model=other), prefix, other)
    check_params(other, params)
    check_layers(other, "moving", params)


# --------------------------------------------------------------------- XLA
def test_xla_compiled_functions_follow_the_switch():
    start = "moving"
    x = make_inputs()
    model = build_model(start)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    params = snapshot(model)
    fn = tf.function(lambda t: model(t, training=False), jit_compile=True)
    predict = Probe("predict", model, x, None)
    for statistics in (start, OTHER[start], start):
        population.set_inference_statistics(model, statistics)
        np.testing.assert_allclose(fn(tf.constant(x)), reference(params, x, statistics), **TOL)
        predict.check(reference(params, x, statistics))
    assert fn.experimental_get_tracing_count() == 1
    assert model.predict_function.experimental_get_tracing_count() == 1


# ------------------------------------------------------- MirroredStrategy
@pytest.mark.parametrize("start", ["moving", "population"])
def test_mirrored_strategy_run_follows_the_attribute(start, mirrored_strategy):
    strategy = mirrored_strategy
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = build_model(start)
    params = snapshot(model)
    x = make_inputs()

    @tf.function
    def step(t):
        return strategy.run(lambda u: model(u, training=False), args=(t,))

    def check(statistics):
        outputs = strategy.experimental_local_results(step(tf.constant(x)))
        assert len(outputs) == 2
        for out in outputs:
            np.testing.assert_allclose(out, reference(params, x, statistics), **TOL)
        for layer in bn_layers(model):
            flags = strategy.experimental_local_results(layer.use_population_statistics.value)
            assert [float(f) for f in flags] == [FLAG[statistics]] * 2

    check(start)
    for statistics in (OTHER[start], start):
        for layer in bn_layers(model):
            layer.inference_statistics = statistics
        check(statistics)
        check_layers(model, statistics, params)
    assert step.experimental_get_tracing_count() == 1
