"""`population.estimate` takes what `model.fit` takes: arrays with `batch_size`, (x, y[, w]) tuples, batched and unbatched
`tf.data.Dataset`s, generators, `PyDataset`s; one pass by default; frozen
layers on request; sub-models; the PyTorch backend. The reference is the numpy
forward pass of `test_population.py` on the same mini-batches."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_population import TOL, build_model, numpy_forward, snapshot

from bn_zoo import population

NAMES = ("bn_conv", "bn_dense")


def examples(n, seed=3):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 4, 4, 2)) * 1.5 + rng.uniform(-1, 1, size=(1, 1, 1, 2))).astype(
        "float32")


def reference(model, batches):
    """Algorithm 2 in numpy: the mean of μ_B and of m'_B/(m'_B − 1)·σ²_B,
    each batch with its own m'_B (the last batch of a pass may be smaller)."""
    seen = [numpy_forward(model, b)[1] for b in batches]
    out = {}
    for name in NAMES:
        means = [s[name][0] for s in seen]
        variances = [s[name][1] * s[name][2] / (s[name][2] - 1) for s in seen]
        out[name] = (np.mean(means, 0), np.mean(variances, 0))
    return out


def assert_population(model, expected):
    for name, (mean, variance) in expected.items():
        layer = model.get_layer(name)
        np.testing.assert_allclose(layer.population_mean, mean, **TOL, err_msg=name)
        np.testing.assert_allclose(layer.population_variance, variance, **TOL, err_msg=name)
        assert layer.inference_statistics == "population"


def slices(x, size):
    return [x[i:i + size] for i in range(0, len(x), size)]


X = examples(20)
Y = np.arange(20) % 3
W = np.linspace(0.1, 1.0, 20).astype("float32")


def generator():
    for batch in slices(X, 6):
        yield batch, np.zeros(len(batch))


class Batches(keras.utils.PyDataset):
    def __init__(self):
        super().__init__()
        self.batches = slices(X, 6)

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return self.batches[index], np.zeros(len(self.batches[index]))


class EndlessBatches(keras.utils.PyDataset):
    """An infinite PyDataset (`num_batches` None): batch i is the i-th of
    the 18 first examples in batches of 6, cycling."""

    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        return slices(X[:18], 6)[index % 3]


def torch_loader():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    return DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)), batch_size=6)


# Each form of the same 20 examples, in batches of 6, 6, 6 and 2, in order.
FORMS = {
    "numpy": lambda: dict(data=X, batch_size=6, shuffle=False),
    "tensor": lambda: dict(data=tf.constant(X), batch_size=6, shuffle=False),
    "x_y": lambda: dict(data=(X, Y), batch_size=6, shuffle=False),
    "x_y_weights": lambda: dict(data=(X, Y, W), batch_size=6, shuffle=False),
    "unbatched_dataset": lambda: dict(
        data=tf.data.Dataset.from_tensor_slices((X, Y)), batch_size=6),
    "batched_dataset": lambda: dict(data=tf.data.Dataset.from_tensor_slices((X, Y, W)).batch(6)),
    "generator": lambda: dict(data=generator()),
    "py_dataset": lambda: dict(data=Batches()),
    "torch_dataloader": lambda: dict(data=torch_loader()),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_one_pass_over_every_form_matches_numpy(form):
    model = build_model()
    before = snapshot(model)
    expected = reference(model, slices(X, 6))

    assert population.estimate(model, **FORMS[form]()) == 2

    assert_population(model, expected)
    after = snapshot(model)
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)


def test_num_batches_takes_the_first_batches_of_arrays():
    model = build_model()
    expected = reference(model, slices(X, 6)[:2])
    population.estimate(model, X, 2, batch_size=6, shuffle=False)
    assert_population(model, expected)


def test_shuffled_arrays_average_over_all_examples():
    """With equal batches, E_B[μ_B] of the first BN, whose input depends on
    each example alone, is the mean over all examples in any order."""
    model = build_model()
    x = examples(18, seed=5)
    population.estimate(model, x, batch_size=6)  # shuffle=True, as fit
    conv = np.asarray(model.get_layer("conv")(x), np.float64)
    np.testing.assert_allclose(
        model.get_layer("bn_conv").population_mean, conv.mean((0, 1, 2)), **TOL)


@pytest.mark.parametrize("data,kwargs,match", [
    (X, {}, "batch_size"),
    ((X, Y), {}, "batch_size"),
    (tf.data.Dataset.from_tensor_slices(X), {}, "not batched.*batch_size"),
    (tf.data.Dataset.from_tensor_slices(X).batch(6).repeat(), {}, "endless.*num_batches"),
    (X, {"batch_size": 0}, "batch_size"),
])
def test_unusable_data_is_refused_and_changes_nothing(data, kwargs, match):
    model = build_model()
    before = {v.path: v.numpy() for v in model.weights}
    with pytest.raises((TypeError, ValueError), match=match):
        population.estimate(model, data, **kwargs)
    for v in model.weights:
        np.testing.assert_array_equal(v.numpy(), before[v.path], err_msg=v.path)
    assert all(model.get_layer(n).inference_statistics == "moving" for n in NAMES)


def test_endless_py_dataset_needs_num_batches():
    model = build_model()
    with pytest.raises(ValueError, match="endless.*num_batches"):
        population.estimate(model, EndlessBatches())
    assert all(model.get_layer(n).inference_statistics == "moving" for n in NAMES)
    population.estimate(model, EndlessBatches(), 5)
    assert_population(model, reference(model, (slices(X[:18], 6) * 2)[:5]))


def test_arrays_of_different_lengths_are_refused():
    model = build_model()
    with pytest.raises(ValueError, match="different numbers of examples"):
        population.estimate(model, (X, Y[:-1]), batch_size=6)


def _labels():
    return tf.data.Dataset.from_tensor_slices(Y).batch(6)


def _strings():
    return tf.data.Dataset.from_tensor_slices(np.array(["img.png"] * 12)).batch(6)


# Data whose batches do not fit the model's (None, 4, 4, 2) input: one clear
# line, checked before the model is traced.
MISFITS = {
    "other_image_size": (lambda: dict(data=examples(12)[:, :3, :3], batch_size=6),
                         ValueError, r"batch 1 does not fit .* takes shape \(None, 4, 4, 2\)"
                         r": its x has shape \(6, 3, 3, 2\)"),
    "other_channels_dataset": (lambda: dict(data=tf.data.Dataset.from_tensor_slices(
        np.zeros((12, 4, 4, 3), "float32")).batch(6)), ValueError, r"shape \(6, 4, 4, 3\)"),
    "flat_rows": (lambda: dict(data=X.reshape(20, -1), batch_size=5), ValueError,
                  r"its x has shape \(5, 32\)"),
    "labels_only_dataset": (lambda: dict(data=_labels()), ValueError, "looks like labels only"),
    "labels_only_arrays": (lambda: dict(data=Y, batch_size=6), ValueError,
                           "looks like labels only"),
    "strings": (lambda: dict(data=_strings()), TypeError, "holds string values"),
    # A later batch too: the first two fit, the third does not; nothing is kept.
    "third_batch": (lambda: dict(data=[X[:6], X[6:12], X[12:18, :2]]), ValueError,
                    r"batch 3 does not fit"),
}


@pytest.mark.parametrize("case", sorted(MISFITS))
def test_batches_that_do_not_fit_the_model_fail_with_one_line(case):
    make, kind, match = MISFITS[case]
    model = build_model()
    before = {v.path: v.numpy() for v in model.weights}
    with pytest.raises(kind, match=match) as raised:
        population.estimate(model, **make())
    message = str(raised.value)
    assert "\n" not in message and "\x1b" not in message, message
    assert message.startswith("population.estimate") and "Received: x of shape" in message
    for v in model.weights:
        np.testing.assert_array_equal(v.numpy(), before[v.path], err_msg=v.path)
    assert all(model.get_layer(n).inference_statistics == "moving" for n in NAMES)


def test_a_missing_last_axis_of_size_1_is_taken_as_keras_takes_it():
    """Keras adds a last axis of size 1 that the input lacks, so the check
    must not refuse (n, 4, 4) for an input (None, 4, 4, 1)."""
    from bn_zoo.layers import BatchNormalization

    def model():
        keras.utils.set_random_seed(4)
        inputs = keras.Input((4, 4, 1))
        x = keras.layers.Conv2D(3, 2, name="conv")(inputs)
        return keras.Model(inputs, BatchNormalization(name="bn")(x))

    images = examples(12)[..., :1]
    with_axis, without = model(), model()
    population.estimate(with_axis, images, batch_size=6, shuffle=False)
    population.estimate(without, images[..., 0], batch_size=6, shuffle=False)
    for name in ("population_mean", "population_variance"):
        np.testing.assert_array_equal(getattr(without.get_layer("bn"), name),
                                      getattr(with_axis.get_layer("bn"), name))


def test_a_subclassed_model_reports_the_layer_error_in_one_line():
    """Without declared inputs nothing can be checked up front; the traced
    call's error comes back as its message, without the trace."""
    from bn_zoo.layers import BatchNormalization

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)
            self.bn = BatchNormalization()

        def call(self, x, training=False):
            return self.bn(self.dense(x), training=training)

    model = Net()
    model(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match=r"on batch 1 failed: .*expected axis -1 of input "
                       r"shape to have value 5.* Received: x of shape \(4, 7\)") as raised:
        population.estimate(model, [np.zeros((4, 7), "float32")])
    assert "\n" not in str(raised.value)


def test_a_distributed_dataset_is_refused_naming_the_plain_one(mirrored_strategy):
    """A distributed dataset (or its iterator) yields per-replica parts of a
    batch (PerReplica values, over the 2 logical CPUs); the estimate runs
    outside the strategy, so it takes the plain dataset, and says so before
    reading anything."""
    strategy = mirrored_strategy
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(6)
    model = build_model()
    for data in (strategy.experimental_distribute_dataset(dataset),
                 iter(strategy.experimental_distribute_dataset(dataset)),
                 strategy.distribute_datasets_from_function(lambda context: dataset)):
        with pytest.raises(TypeError, match=r"takes the plain dataset, not a distributed one"
                           r".*experimental_distribute_dataset.*Received: Distributed"):
            population.estimate(model, data, num_batches=2)
    assert all(model.get_layer(n).inference_statistics == "moving" for n in NAMES)
    population.estimate(model, dataset)  # The plain one.
    assert_population(model, reference(model, slices(X, 6)))


def test_repeated_dataset_with_num_batches():
    model = build_model()
    dataset = tf.data.Dataset.from_tensor_slices(X[:18]).batch(6).repeat()
    population.estimate(model, dataset, 5)
    assert_population(model, reference(model, (slices(X[:18], 6) * 2)[:5]))


def test_frozen_layers_on_request():
    """A frozen feature extractor: refused by default (with the fix named),
    estimated with include_frozen=True as if unfrozen, and still frozen."""
    model = build_model()
    model.trainable = False
    expected = reference(model, slices(X, 6))  # the training network's statistics
    before = snapshot(model)
    with pytest.raises(ValueError, match="include_frozen=True"):
        population.estimate(model, X, batch_size=6, shuffle=False)

    assert population.estimate(model, X, batch_size=6, shuffle=False, include_frozen=True) == 2

    assert_population(model, expected)
    assert not model.trainable_weights
    assert not any(model.get_layer(n).trainable for n in NAMES)
    for path, value in snapshot(model).items():
        np.testing.assert_array_equal(value, before[path], err_msg=path)
    # Still frozen: training mode runs inference with the new statistics.
    want, _ = numpy_forward(model, X[:4], expected)
    np.testing.assert_allclose(model(X[:4], training=True), want, **TOL)


def test_sub_models_built_from_the_layers_see_the_new_statistics():
    """A sub-model traced before `estimate` (predict) and one built after
    both read the statistics the estimate chose, with no stale copy."""
    model = build_model()
    early = keras.Model(model.inputs, model.get_layer("bn_conv").output)
    x = examples(5, seed=9)
    early.predict(x, verbose=0)  # traced with the moving averages
    population.estimate(model, X, batch_size=6, shuffle=False)
    late = keras.Model(model.get_layer("conv").output, model.get_layer("bn_conv").output)

    expected = reference(model, slices(X, 6))
    conv = np.asarray(model.get_layer("conv")(x), np.float64)
    layer = model.get_layer("bn_conv")
    gamma, beta = np.asarray(layer.gamma, np.float64), np.asarray(layer.beta, np.float64)
    mean, variance = expected["bn_conv"]
    want = gamma * (conv - mean) / np.sqrt(variance + layer.epsilon) + beta
    np.testing.assert_allclose(early.predict(x, verbose=0), want, **TOL)
    np.testing.assert_allclose(late.predict(conv.astype("float32"), verbose=0), want, **TOL)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               numpy_forward(model, x, expected)[0], **TOL)


BACKEND_SCRIPT = textwrap.dedent("""
    import json, sys
    import keras, numpy as np
    from bn_zoo import population
    from bn_zoo.layers import BatchNormalization
    x = np.asarray(json.loads(sys.stdin.read()), "float32")
    inputs = keras.Input((4,))
    bn = BatchNormalization(name="bn")
    model = keras.Model(inputs, bn(keras.layers.Dense(3, name="dense")(inputs)))
    assert population.estimate(model, x, batch_size=4, shuffle=False) == 1
    dense = model.get_layer("dense")
    print(json.dumps({
        "backend": keras.backend.backend(),
        "kernel": keras.ops.convert_to_numpy(dense.kernel).tolist(),
        "bias": keras.ops.convert_to_numpy(dense.bias).tolist(),
        "mean": keras.ops.convert_to_numpy(bn.population_mean).tolist(),
        "variance": keras.ops.convert_to_numpy(bn.population_variance).tolist(),
    }))
""")


@pytest.mark.parametrize("backend", ["torch"])
def test_other_keras_backends(backend):
    """In a fresh process on the PyTorch backend (numpy arrays, eager, no
    autograd). JAX takes the same eager path without `torch.no_grad`."""
    import json

    pytest.importorskip(backend)
    x = np.random.default_rng(4).normal(2.0, 3.0, size=(12, 4)).astype("float32")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-c", BACKEND_SCRIPT], input=json.dumps(x.tolist()),
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["backend"] == backend
    h = x.astype(np.float64) @ np.asarray(out["kernel"]) + np.asarray(out["bias"])
    batches = slices(h, 4)
    np.testing.assert_allclose(out["mean"], np.mean([b.mean(0) for b in batches], 0), **TOL)
    np.testing.assert_allclose(out["variance"], np.mean([b.var(0, ddof=1) for b in batches], 0),
                               **TOL)
