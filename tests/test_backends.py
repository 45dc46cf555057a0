"""The layer, the eight registered models, population statistics and the
shipped MNIST weights on Keras' JAX and PyTorch backends.

This process (TensorFlow) builds every model at a tiny size, randomizes its
BN statistics, γ, β and biases, saves the weights, and records TensorFlow's
predictions and one `fit` step. One fresh process per backend
(`tests/backend_worker.py`, with `KERAS_BACKEND` set) loads the same weights
and does the same; this file checks its values against TensorFlow's and
against numpy, and reloads its `.keras` files here, on TensorFlow.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import bn_zoo
import commands
from bn_zoo import population
from bn_zoo.data import mnist
from bn_zoo.models import lrn
from bn_zoo.models import weights as weights_lib

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

BACKENDS = ("jax", "torch")
MODELS = tuple(bn_zoo.list_models())
BN_MODELS = tuple(m for m in MODELS if m != "mlp" and m != "inception")
ESTIMATE = ("bn_mlp", "bn_baseline", "bn_x5")  # as in backend_worker.py
ROUND_TRIP = ("mlp", "bn_mlp", "inception", "bn_baseline")
MLP_KWARGS = dict(input_shape=(6, 6, 1), hidden_units=(10, 8), classes=4, seed=1)
INCEPTION_KWARGS = dict(
    input_shape=(32, 32, 3), depth_multiplier=0.1, classes=4, dropout_rate=0.0, seed=1
)
LRN_KWARGS = dict(depth_radius=3, bias=0.5, alpha=2e-3, beta=0.6)
WORKER = os.path.join(commands.TESTS, "backend_worker.py")


def kwargs_of(name):
    return dict(MLP_KWARGS if "mlp" in name else INCEPTION_KWARGS)


def randomize(model, rng, statistics):
    """Random BN statistics, γ, β and biases, so that none can cancel; the
    layers infer with `statistics`."""
    for layer in population.batch_normalization_layers(model):
        c = layer.moving_mean.shape
        layer.gamma.assign(rng.uniform(0.5, 1.5, c))
        layer.beta.assign(rng.normal(0, 0.5, c))
        layer.moving_mean.assign(rng.normal(0, 0.5, c))
        layer.moving_variance.assign(rng.uniform(0.5, 2.0, c))
        layer.population_mean.assign(rng.normal(0, 0.5, c))
        layer.population_variance.assign(rng.uniform(0.5, 2.0, c))
    for layer in model.layers:
        if isinstance(getattr(layer, "bias", None), keras.Variable):
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))
    population.set_inference_statistics(model, statistics)


def compile_like_worker(model):
    eager = not model.name.endswith("mlp")
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy",
                  run_eagerly=eager)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """TensorFlow's side; writes the worker's inputs."""
    out = tmp_path_factory.mktemp("backends")
    rng = np.random.default_rng(11)
    inputs, ref = {}, {}
    for name in MODELS:
        kwargs = kwargs_of(name)
        model = bn_zoo.create_model(name, **kwargs)
        # bn_x30 infers with its (random) population statistics.
        randomize(model, rng, "population" if name == "bn_x30" else "moving")
        x = rng.normal(0, 1, (16 if "mlp" in name else 8, *kwargs["input_shape"]))
        inputs[f"{name}/x"] = x.astype("float32")
        inputs[f"{name}/x2"] = rng.normal(0.5, 2, x.shape).astype("float32")
        inputs[f"{name}/y"] = rng.integers(0, kwargs["classes"], len(x))
        path = os.path.join(out, f"{name}.weights.h5")
        model.save_weights(path)
        ref[f"{name}/initial"] = {w.path: w.numpy() for w in model.weights}
        compile_like_worker(model)
        ref[f"{name}/predict"] = model.predict(inputs[f"{name}/x"], verbose=0)
        model.fit(inputs[f"{name}/x"], inputs[f"{name}/y"], batch_size=len(x),
                  shuffle=False, verbose=0)
        ref[f"{name}/after_fit"] = {w.path: w.numpy() for w in model.weights}
    images, _ = mnist.load("test", os.environ.get("TFDS_DATA_DIR"))
    inputs["mnist"] = np.asarray(bn_zoo.models.preprocess_input(images[:64], "mnist"))
    weights_lib.CACHE_DIR = str(out / "cache_tensorflow")
    try:
        for name in ("mlp", "bn_mlp"):
            shipped = bn_zoo.create_model(name, weights="mnist")
            ref[f"mnist/{name}"] = shipped.predict(inputs["mnist"], verbose=0)
    finally:
        weights_lib.CACHE_DIR = None
    inputs["lrn_x"] = rng.normal(0, 20, (2, 3, 4, 9)).astype("float32")
    inputs["lrn_kwargs"] = json.dumps(LRN_KWARGS)
    ref["lrn"] = tf.nn.local_response_normalization(inputs["lrn_x"], **LRN_KWARGS).numpy()
    inputs["kwargs"] = json.dumps({name: kwargs_of(name) for name in MODELS})
    np.savez(out / "inputs.npz", **inputs)
    ref["inputs"] = inputs
    ref["dir"] = out
    return ref


@pytest.fixture(scope="module", params=BACKENDS)
def worker(request, reference):
    """The values a fresh process on `KERAS_BACKEND=<param>` computed."""
    backend = request.param
    env = dict(os.environ, KERAS_BACKEND=backend)
    if backend == "jax":
        # The worker runs the Inception models eagerly, where XLA compiles every
        # operation of a new shape: unoptimized code compiles 2-3x faster.
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0")
    run = subprocess.run([sys.executable, WORKER, str(reference["dir"])], env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-5000:]
    values = dict(np.load(reference["dir"] / f"{backend}.npz"))
    values["errors"] = json.loads(str(values["errors"]))
    values["backend"] = backend
    return values


@pytest.mark.parametrize("name", MODELS)
def test_predict_equals_tensorflow(worker, reference, name):
    np.testing.assert_allclose(worker[f"{name}/predict"], reference[f"{name}/predict"],
                               rtol=0, atol=1e-5)


# Float32 rounding of one SGD step, as a fraction of a variable's largest
# update. At these sizes backpropagation through a stack of BN layers on
# batches of 8 amplifies rounding: against the same step in float64, the
# gradient reaching bn_baseline's first (depthwise) convolution is off by up to
# 3e-4 of its largest entry in float32, on TensorFlow (oneDNN on or off) and
# on PyTorch alike, and a float64 step whose inputs and weights moved by one
# float32 ulp moves the depthwise kernel by 1e-4 of its largest update. Each
# kernel element sums 2048 products whose |terms| add up to 9 times the
# largest gradient, and the update's rounding error reaches 1.7e-4 of the
# largest update (1.4e-4 absolute) on each backend. 1e-3 admits that six
# times over; a wrong gradient moves an update by a large part of itself.
UPDATE_ROUNDING = 1e-3


@pytest.mark.parametrize("name", MODELS)
def test_one_fit_step_equals_tensorflow(worker, reference, name):
    """Every variable after one SGD step of `fit`: weights (so the gradients
    through BN and LRN) and the moving statistics, to 1e-4 or, where larger,
    `UPDATE_ROUNDING` of the variable's largest update."""
    expected = reference[f"{name}/after_fit"]
    initial = reference[f"{name}/initial"]
    moved = 0
    for path, value in expected.items():
        actual = worker[f"{name}/after_fit/{path}"]
        update = float(np.max(np.abs(value.astype(np.float64) - initial[path])))
        scale = max(1.0, float(np.max(np.abs(value))))
        np.testing.assert_allclose(
            actual, value, rtol=1e-4, atol=max(1e-4 * scale, UPDATE_ROUNDING * update),
            err_msg=f"{worker['backend']} {path}")
        moved += not np.array_equal(value, initial[path])
    assert moved > len(expected) // 2  # The step trained.


def expected_moving(initial_mean, initial_variance, inputs, momentum, axes):
    """Algorithm 1's moving averages after one step, in float64 numpy, with
    the unbiased m'/(m'−1) variance."""
    x = np.asarray(inputs, np.float64)
    return (momentum * initial_mean + (1 - momentum) * x.mean(axis=axes),
            momentum * initial_variance + (1 - momentum) * x.var(axis=axes, ddof=1))


@pytest.mark.parametrize("name", BN_MODELS)
def test_moving_statistics_of_fit_match_numpy(worker, reference, name):
    """The first BN layer's moving statistics after one `fit` step, from its
    input (a probe through Keras' own layers before it) on that backend."""
    first = json.loads(str(worker[f"{name}/first_bn"]))
    x = worker[f"{name}/bn_input_before"]
    initial = reference[f"{name}/initial"]
    mean, variance = expected_moving(initial[first["mean"]], initial[first["variance"]],
                                     x, first["momentum"], tuple(range(x.ndim - 1)))
    after = f"{name}/after_fit/"
    np.testing.assert_allclose(worker[after + first["mean"]], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(worker[after + first["variance"]], variance,
                               rtol=1e-5, atol=1e-6)


def test_bn_mlp_moving_statistics_of_fit_match_numpy_in_every_layer(worker, reference):
    """All three BN layers of bn_mlp after one `fit` step, from a float64 numpy
    forward pass in training mode through the initial weights."""
    initial = reference["bn_mlp/initial"]
    x = reference["inputs"]["bn_mlp/x"].reshape(16, -1).astype(np.float64)
    h = x
    for i in range(1, len(MLP_KWARGS["hidden_units"]) + 1):
        z = h @ initial[f"hidden{i}_dense/kernel"]
        bn = f"hidden{i}_bn/"
        mean, variance = expected_moving(initial[bn + "moving_mean"],
                                         initial[bn + "moving_variance"], z, 0.99, (0,))
        np.testing.assert_allclose(worker[f"bn_mlp/after_fit/{bn}moving_mean"], mean,
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(worker[f"bn_mlp/after_fit/{bn}moving_variance"],
                                   variance, rtol=1e-5, atol=1e-6)
        normalized = (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-3)
        h = 1 / (1 + np.exp(-(normalized * initial[bn + "gamma"] + initial[bn + "beta"])))


@pytest.mark.parametrize("name", ESTIMATE)
def test_population_estimate_matches_numpy(worker, name):
    """Algorithm 2 over two batches: E[x] = mean of μ_B, Var[x] = mean of
    m'/(m'−1)·σ²_B, for the first BN layer."""
    batches = worker[f"{name}/bn_input_batches"].astype(np.float64)
    axes = tuple(range(1, batches.ndim - 1))
    np.testing.assert_allclose(worker[f"{name}/population_mean"],
                               batches.mean(axis=axes).mean(0), rtol=1e-5, atol=1e-6)
    variances = [b.reshape(-1, b.shape[-1]).var(axis=0, ddof=1) for b in batches]
    np.testing.assert_allclose(worker[f"{name}/population_variance"],
                               np.mean(variances, 0), rtol=1e-5, atol=1e-6)
    layers = json.loads(str(worker[f"{name}/first_bn"]))["layers"]
    assert int(worker[f"{name}/estimated"]) == layers


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_keras_file_round_trip(worker, reference, name):
    """The worker's `.keras` file predicts as the model that saved it, there and
    here on TensorFlow (population statistics active where estimated)."""
    x = reference["inputs"][f"{name}/x"]
    expected = worker[f"{name}/predict_after"]
    np.testing.assert_allclose(worker[f"{name}/reloaded_predict"], expected, atol=1e-6)
    loaded = keras.saving.load_model(reference["dir"] / f"{name}.{worker['backend']}.keras")
    # Across backends after a training step: float32 rounding of two libraries.
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=5e-5, atol=1e-5)
    if name in ESTIMATE:
        assert all(layer.inference_statistics == "population"
                   for layer in population.batch_normalization_layers(loaded))


@pytest.mark.parametrize("name", ["mlp", "bn_mlp"])
def test_shipped_mnist_weights_predict_as_on_tensorflow(worker, reference, name):
    np.testing.assert_allclose(worker[f"mnist/{name}"], reference[f"mnist/{name}"],
                               rtol=0, atol=1e-5)
    # Real digits, classified: the shipped networks agree with the labels.
    _, labels = mnist.load("test", os.environ.get("TFDS_DATA_DIR"))
    assert np.mean(np.argmax(worker[f"mnist/{name}"], -1) == labels[:64]) > 0.9


def test_local_response_normalization_matches_tensorflow(worker, reference):
    np.testing.assert_allclose(worker["lrn"], reference["lrn"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(worker["lrn_function"], reference["lrn"], rtol=1e-5,
                               atol=1e-6)


def test_tensorflow_only_features_are_refused_clearly(worker):
    errors = worker["errors"]
    assert "`synchronized=True` needs the TensorFlow backend" in errors["synchronized"]
    assert f"runs the '{worker['backend']}' backend" in errors["trainer"]
    assert "KERAS_BACKEND=tensorflow" in errors["trainer"]
    assert not errors["workdir_created"]


@pytest.mark.parametrize(
    "depth_radius, channels, dtype",
    [(0, 3, "float32"), (2, 2, "float32"), (2, 7, "float32"), (5, 4, "float32"),
     (2, 16, "float16")],
)
def test_keras_ops_lrn_equals_tensorflows_kernel(depth_radius, channels, dtype):
    """`lrn.local_response_normalization` (what JAX and PyTorch run) against
    `tf.nn.local_response_normalization`: values and gradients, windows
    wider than the channels included."""
    rng = np.random.default_rng(depth_radius)
    x = tf.constant(rng.normal(0, 20, (2, 3, 4, channels)), dtype)
    weights = tf.constant(rng.normal(0, 1, channels), dtype)
    kwargs = dict(depth_radius=depth_radius, bias=0.7, alpha=1e-3, beta=0.6)
    results = []
    for fn in (lrn.local_response_normalization, tf.nn.local_response_normalization):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x, **kwargs)
            loss = tf.reduce_sum(tf.cast(y, "float32") * tf.cast(weights, "float32"))
        assert y.dtype == dtype
        results.append((np.asarray(y, np.float64), tape.gradient(loss, x).numpy()))
    tolerance = 1e-5 if dtype == "float32" else 2e-3
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=tolerance,
                               atol=tolerance)
    np.testing.assert_allclose(results[0][1].astype(np.float64),
                               results[1][1].astype(np.float64),
                               rtol=tolerance, atol=tolerance)


def test_trainer_command_refuses_another_backend(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax")
    run = commands.run("trainers.train", ["--config=configs/mnist.py:bn_mlp",
                                          f"--workdir={tmp_path / 'run'}"],
                       env=env, timeout=300, tf_log_level=commands.INHERIT)
    assert run.returncode == 1
    assert "ERROR (BackendError)" in run.stderr
    assert "runs the 'jax' backend" in run.stderr and "KERAS_BACKEND=tensorflow" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "run").exists()
