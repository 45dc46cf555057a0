"""Population statistics (Algorithm 2, steps 8-10) with
`bn_zoo.population.estimate`, against numpy on the same mini-batches."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bn_zoo import population
from bn_zoo.layers import BatchNormalization

EPSILON = 1e-3
BATCH, NUM_BATCHES = 6, 3
TOL = dict(rtol=1e-5, atol=1e-5)


def build_model(seed=0, frozen_dense_bn=False):
    """Conv → BN → ReLU → Flatten → Dense → BN: the second BN's inputs depend
    on the first BN's training-mode (mini-batch) normalization."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    x = BatchNormalization(epsilon=EPSILON, name="bn_conv")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5, name="dense")(x)
    x = BatchNormalization(epsilon=EPSILON, name="bn_dense")(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(seed)
    for name in ("bn_conv", "bn_dense"):
        layer = model.get_layer(name)
        channels = layer.gamma.shape[0]
        layer.gamma.assign(rng.uniform(0.5, 2.0, channels).astype("float32"))
        layer.beta.assign(rng.normal(size=channels).astype("float32"))
        layer.moving_mean.assign(rng.normal(size=channels).astype("float32"))
        layer.moving_variance.assign(rng.uniform(0.5, 2, channels).astype("float32"))
    if frozen_dense_bn:
        model.get_layer("bn_dense").trainable = False
    return model


def make_batches(seed=1, n=NUM_BATCHES):
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(BATCH, 4, 4, 2)) * rng.uniform(0.5, 2) + rng.uniform(-1, 1))
        .astype("float32")
        for _ in range(n)
    ]


def affine(x, mean, variance, layer):
    gamma = np.asarray(layer.gamma, np.float64)
    beta = np.asarray(layer.beta, np.float64)
    return gamma * (x - mean) / np.sqrt(variance + EPSILON) + beta


def numpy_forward(model, x, statistics=None):
    """The model's forward pass in numpy (convolution by Keras' own layer).

    `statistics=None` is the training network (mini-batch statistics); it
    returns the batch (mean, biased variance, m') per BN layer. Otherwise
    `statistics` maps a BN layer's name to the (mean, variance) to use.
    """
    seen = {}

    def bn(name, h):
        layer = model.get_layer(name)
        flat = h.reshape(-1, h.shape[-1])  # channels last: over batch and space
        if statistics is None:
            stats = flat.mean(0), flat.var(0)
            seen[name] = (*stats, flat.shape[0])
        else:
            stats = statistics[name]
        return affine(h, *stats, layer)

    h = np.asarray(model.get_layer("conv")(x), np.float64)
    h = np.maximum(bn("bn_conv", h), 0.0).reshape(len(x), -1)
    dense = model.get_layer("dense")
    h = h @ np.asarray(dense.kernel, np.float64) + np.asarray(dense.bias, np.float64)
    return bn("bn_dense", h), seen


def numpy_population(model, batches):
    per_batch = [numpy_forward(model, x)[1] for x in batches]
    result = {}
    for name in ("bn_conv", "bn_dense"):
        means = np.stack([b[name][0] for b in per_batch])
        variances = np.stack([b[name][1] for b in per_batch])
        count = per_batch[0][name][2]
        result[name] = (means.mean(0), count / (count - 1) * variances.mean(0))
    return result


def snapshot(model):
    return {
        v.path: v.numpy()
        for v in model.weights
        if "population" not in v.path
    }


def test_estimate_matches_numpy_and_changes_nothing_else():
    model = build_model()
    batches = make_batches()
    before = snapshot(model)
    expected = numpy_population(model, batches)
    # Counts m' = m·p·q for the conv BN, m for the dense BN.
    assert numpy_forward(model, batches[0])[1]["bn_conv"][2] == BATCH * 16

    dataset = tf.data.Dataset.from_tensor_slices(batches)
    updated = population.estimate(model, dataset, NUM_BATCHES)

    assert updated == 2
    for name, (mean, variance) in expected.items():
        layer = model.get_layer(name)
        np.testing.assert_allclose(layer.population_mean, mean, **TOL)
        np.testing.assert_allclose(layer.population_variance, variance, **TOL)
        assert layer.inference_statistics == "population"
    after = snapshot(model)
    assert after.keys() == before.keys()
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)

    # Inference now is the fixed affine map with the population statistics.
    x = make_batches(seed=2, n=1)[0]
    want, _ = numpy_forward(model, x, expected)
    np.testing.assert_allclose(model(x, training=False), want, **TOL)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, **TOL)


def test_only_num_batches_are_used_and_labels_are_ignored():
    model = build_model()
    batches = make_batches(n=5)
    expected = numpy_population(model, batches[:2])
    labels = [np.zeros((BATCH,), "float32")] * 5
    dataset = tf.data.Dataset.from_tensor_slices((batches, labels))  # (x, y) pairs

    population.estimate(model, dataset, 2)

    for name, (mean, variance) in expected.items():
        np.testing.assert_allclose(model.get_layer(name).population_mean, mean, **TOL)
        np.testing.assert_allclose(
            model.get_layer(name).population_variance, variance, **TOL
        )


def test_compiled_predict_switches_to_population():
    model = build_model()
    model.compile()
    batches = make_batches()
    x = make_batches(seed=2, n=1)[0]
    moving = {
        name: (
            model.get_layer(name).moving_mean.numpy(),
            model.get_layer(name).moving_variance.numpy(),
        )
        for name in ("bn_conv", "bn_dense")
    }
    np.testing.assert_allclose(
        model.predict(x, verbose=0), numpy_forward(model, x, moving)[0], **TOL
    )

    population.estimate(model, batches, NUM_BATCHES)  # a plain list works too

    want, _ = numpy_forward(model, x, numpy_population(model, batches))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, **TOL)
    # And back.
    population.set_inference_statistics(model, "moving")
    np.testing.assert_allclose(
        model.predict(x, verbose=0), numpy_forward(model, x, moving)[0], **TOL
    )


def test_activate_false_keeps_moving_statistics_in_inference():
    model = build_model()
    batches = make_batches()
    x = make_batches(seed=2, n=1)[0]
    before = model(x, training=False)

    population.estimate(model, batches, NUM_BATCHES, activate=False)

    expected = numpy_population(model, batches)
    for name, (mean, _) in expected.items():
        layer = model.get_layer(name)
        assert layer.inference_statistics == "moving"
        np.testing.assert_allclose(layer.population_mean, mean, **TOL)
    np.testing.assert_array_equal(model(x, training=False), before)


def test_frozen_layer_is_left_alone():
    model = build_model(frozen_dense_bn=True)
    frozen = model.get_layer("bn_dense")
    batches = make_batches()
    assert population.estimate(model, batches, NUM_BATCHES) == 1
    np.testing.assert_array_equal(frozen.population_mean, np.zeros(5))
    np.testing.assert_array_equal(frozen.population_variance, np.ones(5))
    assert frozen.inference_statistics == "moving"
    # The conv BN still got the training network's statistics.
    mean, variance = numpy_population(model, batches)["bn_conv"]
    np.testing.assert_allclose(model.get_layer("bn_conv").population_mean, mean, **TOL)
    np.testing.assert_allclose(
        model.get_layer("bn_conv").population_variance, variance, **TOL
    )


def test_biased_layer_averages_biased_variances():
    layer = BatchNormalization(variance_correction="biased", epsilon=EPSILON)
    batches = [b.reshape(-1, 2) for b in make_batches()]
    layer.build((None, 2))
    population.estimate(layer, batches, NUM_BATCHES)
    np.testing.assert_allclose(
        layer.population_variance, np.mean([b.var(0) for b in batches], 0), **TOL
    )
    np.testing.assert_allclose(
        layer.population_mean, np.mean([b.mean(0) for b in batches], 0), **TOL
    )


def test_float64_layer_keeps_float64_precision():
    """Activations at |mean|/std = 1e4 (mean ~1e3, std ~0.1): float32 keeps
    only ~7 digits of the mean, so the statistics must stay float64 end to end
    to match numpy's float64 Algorithm 2 to 1e-12."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((2, 2, 3), dtype="float64")
    layer = BatchNormalization(epsilon=EPSILON, dtype="float64", name="bn64")
    model = keras.Model(inputs, layer(inputs))
    rng = np.random.default_rng(3)
    layer.gamma.assign(rng.uniform(0.5, 2.0, 3))
    layer.beta.assign(rng.normal(size=3))
    center = 1e3 + rng.normal(size=3)
    batches = [center + 0.1 * rng.uniform(0.5, 2.0, 3) * rng.normal(size=(BATCH, 2, 2, 3))
               for _ in range(NUM_BATCHES)]

    population.estimate(model, batches, NUM_BATCHES)

    count = BATCH * 4  # m' = m·p·q
    mean = np.mean([b.mean((0, 1, 2)) for b in batches], 0)
    variance = count / (count - 1) * np.mean([b.var((0, 1, 2)) for b in batches], 0)
    assert layer.population_mean.dtype == layer.population_variance.dtype == "float64"
    np.testing.assert_allclose(layer.population_mean, mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(layer.population_variance, variance, rtol=1e-12, atol=0)
    x = batches[0]
    want = affine(x, mean, variance, layer)
    np.testing.assert_allclose(model(x, training=False), want, rtol=1e-10, atol=1e-10)


def test_batch_normalization_layers_finds_nested_layers():
    inner = build_model()
    outer = keras.Sequential(
        [keras.Input((4, 4, 2)), inner, BatchNormalization(name="bn_outer")]
    )
    names = [l.name for l in population.batch_normalization_layers(outer)]
    assert sorted(names) == ["bn_conv", "bn_dense", "bn_outer"]


@pytest.mark.parametrize(
    "num_batches,error,match",
    [
        (0, ValueError, "> 0"),
        (-2, ValueError, "> 0"),
        (1.5, TypeError, "integer"),
        (True, TypeError, "integer"),
    ],
)
def test_bad_num_batches(num_batches, error, match):
    model = build_model()
    with pytest.raises(error, match=match):
        population.estimate(model, make_batches(), num_batches)


def test_dataset_too_short():
    model = build_model()
    before = snapshot(model)
    with pytest.raises(ValueError, match="ran out after 3 batches"):
        population.estimate(model, make_batches(), 4)
    for name in ("bn_conv", "bn_dense"):
        layer = model.get_layer(name)
        assert layer.inference_statistics == "moving"
        assert np.all(layer.population_variance.numpy() == 1.0)  # untouched
    for path, value in snapshot(model).items():
        np.testing.assert_array_equal(before[path], value)


def test_model_without_batch_normalization():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no trainable bn_zoo"):
        population.estimate(model, [np.ones((4, 3), "float32")], 1)
    keras_bn = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match="no trainable bn_zoo"):
        population.estimate(keras_bn, [np.ones((4, 3), "float32")], 1)


def test_single_example_batches_are_refused():
    model = build_model()
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="more than"):
        population.estimate(model, [b[:1] for b in make_batches()], 2)


def test_repeated_estimates_trace_once_and_retrace_when_a_layer_freezes(monkeypatch):
    """The training-mode pass is a traced tf.function: the Python body of a
    BN layer runs only while tracing. One model estimated three times traces
    once; freezing a BN layer changes the network, which traces again."""
    traces = []
    original = BatchNormalization.call

    def counting_call(self, inputs, training=None, mask=None):
        if self.name == "bn_conv":
            traces.append(self.name)
        return original(self, inputs, training=training, mask=mask)

    monkeypatch.setattr(BatchNormalization, "call", counting_call)
    model = build_model()
    for seed in (1, 2, 3):
        population.estimate(model, make_batches(seed=seed), NUM_BATCHES)
    assert len(traces) == 1

    model.get_layer("bn_dense").trainable = False
    batches = make_batches(seed=4)
    expected = numpy_population(model, batches)["bn_conv"]
    assert population.estimate(model, batches, NUM_BATCHES) == 1
    assert len(traces) == 2
    np.testing.assert_allclose(model.get_layer("bn_conv").population_mean, expected[0], **TOL)
