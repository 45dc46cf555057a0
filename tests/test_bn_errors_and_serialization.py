"""Bad input and config / `.keras` round trips
(behaviour 8) of `bn_zoo.layers.BatchNormalization`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bn_zoo.layers import BatchNormalization

SINGLE_VALUE = "expected more than 1 value per channel"


# ---------------------------------------------------------- m' = 1 (step 7)
@pytest.mark.parametrize(
    "shape,axis", [((1, 4), -1), ((1, 1, 1, 3), -1), ((1, 3, 1, 1), 1), ((1, 1, 3), -1)]
)
def test_single_value_per_channel_static_shape(shape, axis):
    layer = BatchNormalization(axis=axis)
    with pytest.raises(ValueError, match=SINGLE_VALUE):
        layer(np.ones(shape, "float32"), training=True)
    # Inference with one example is fine.
    assert np.all(np.isfinite(layer(np.ones(shape, "float32"), training=False)))


@pytest.mark.parametrize("shape", [(None, 4), (None, 1, 1, 3)])
def test_single_value_per_channel_dynamic_shape(shape):
    layer = BatchNormalization()
    step = tf.function(
        lambda x: layer(x, training=True),
        input_signature=[tf.TensorSpec(shape, tf.float32)],
    )
    concrete = [2 if d is None else d for d in shape]
    step(tf.random.normal(concrete))  # m' = 2: fine
    before = [layer.moving_mean.numpy(), layer.moving_variance.numpy()]

    with pytest.raises(tf.errors.InvalidArgumentError, match=SINGLE_VALUE):
        step(tf.ones([1] + list(shape[1:])))
    # The failed step did not write inf or NaN into the statistics.
    np.testing.assert_array_equal(layer.moving_mean, before[0])
    np.testing.assert_array_equal(layer.moving_variance, before[1])


@pytest.mark.parametrize("traced", [False, True])
@pytest.mark.parametrize("kept", [0, 1])
@pytest.mark.parametrize("correction", ["unbiased", "biased"])
def test_mask_leaving_one_value_or_none_is_refused(kept, traced, correction):
    """m' = 0 would make μ_B NaN: the refused step must not write it."""
    layer = BatchNormalization(variance_correction=correction)
    call = lambda x, m: layer(x, training=True, mask=m)  # noqa: E731
    call = tf.function(call) if traced else call
    x = tf.random.normal((2, 3, 4))
    call(x, tf.ones((2, 3), bool))
    before = [layer.moving_mean.numpy(), layer.moving_variance.numpy()]
    mask = np.zeros((2, 3), bool)
    mask[0, :kept] = True
    errors = (ValueError, tf.errors.InvalidArgumentError)  # eager / traced
    with pytest.raises(errors, match=SINGLE_VALUE):
        call(x, tf.constant(mask))
    np.testing.assert_array_equal(layer.moving_mean, before[0])
    np.testing.assert_array_equal(layer.moving_variance, before[1])


@pytest.mark.parametrize(
    "shape,axis", [((5, 3), -1), ((2, 3, 3, 2), -1), ((2, 2, 3, 3), 1)]
)
@pytest.mark.parametrize("correction", ["unbiased", "biased"])
def test_constant_input_gives_beta(shape, axis, correction):
    channels = shape[axis]
    gamma = np.linspace(0.5, 2.0, channels).astype("float32")
    beta = np.linspace(-1.0, 1.0, channels).astype("float32")
    layer = BatchNormalization(axis=axis, variance_correction=correction)
    layer.build(shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    y = np.asarray(layer(np.full(shape, 3.0, "float32"), training=True))
    broadcast = [1] * len(shape)
    broadcast[axis] = -1
    # x̂ = 0 exactly, so y = 0·γ + β.
    expected = np.broadcast_to(beta.reshape(broadcast), shape)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    for variable in (layer.moving_mean, layer.moving_variance):
        assert np.all(np.isfinite(variable))
    np.testing.assert_allclose(layer.moving_variance, 0.99, rtol=1e-6)


# ------------------------------------------------------- build-time errors
@pytest.mark.parametrize(
    "axis,shape,match",
    [
        (2, (4, 3), "out of range"),
        (-3, (4, 3), "out of range"),
        (4, (2, 3, 3, 2), "out of range"),
        (0, (4, 3), "batch axis"),
        (-4, (2, 3, 3, 2), "batch axis"),
        (-1, (4,), "rank >= 2"),
        (-1, (4, None), "known size"),
    ],
)
def test_bad_axis_or_rank_fails_at_build(axis, shape, match):
    with pytest.raises(ValueError, match=match):
        BatchNormalization(axis=axis).build(shape)


def test_unknown_channel_dimension_in_a_model():
    with pytest.raises(ValueError, match="known size"):
        BatchNormalization()(keras.Input(shape=(None,)))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"variance_correction": "bessel"}, ValueError, "variance_correction"),
        ({"inference_statistics": "running"}, ValueError, "inference_statistics"),
        ({"momentum": 1.5}, ValueError, "momentum"),
        ({"momentum": -0.1}, ValueError, "momentum"),
        ({"epsilon": 0.0}, ValueError, "epsilon"),
        ({"epsilon": -1e-3}, ValueError, "epsilon"),
        ({"axis": [1, 2]}, TypeError, "axis"),
        ({"axis": True}, TypeError, "axis"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        BatchNormalization(**kwargs)


def test_bad_inference_statistics_assignment():
    layer = BatchNormalization()
    with pytest.raises(ValueError, match="inference_statistics"):
        layer.inference_statistics = "average"
    assert layer.inference_statistics == "moving"


# ------------------------------------------------------ round trips (8)
def randomize_statistics(layer, rng):
    for variable in layer.weights:
        if variable is layer.use_population_statistics:
            continue  # the inference-statistics choice, not a statistic
        positive = "variance" in variable.path or "gamma" in variable.path
        low, high = (0.5, 2.0) if positive else (-1.0, 1.0)
        variable.assign(rng.uniform(low, high, variable.shape).astype("float32"))


def test_config_round_trip():
    rng = np.random.default_rng(11)
    layer = BatchNormalization(
        axis=1,
        momentum=0.8,
        epsilon=1e-2,
        center=False,
        gamma_initializer="he_normal",
        gamma_regularizer=keras.regularizers.L2(1e-4),
        beta_constraint=None,
        variance_correction="biased",
        inference_statistics="population",
        name="bn",
    )
    x = rng.normal(size=(4, 3, 2, 2)).astype("float32")
    layer.build(x.shape)
    randomize_statistics(layer, rng)
    config = layer.get_config()
    assert config["variance_correction"] == "biased"
    assert config["inference_statistics"] == "population"

    clone = BatchNormalization.from_config(config)
    assert clone.get_config() == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    for statistics in ("population", "moving"):
        layer.inference_statistics = clone.inference_statistics = statistics
        np.testing.assert_array_equal(clone(x), layer(x))
    np.testing.assert_array_equal(clone(x, training=True), layer(x, training=True))

    via_keras = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(via_keras, BatchNormalization)


def small_model():
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    x = BatchNormalization(inference_statistics="population", name="bn_conv")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5)(x)
    x = BatchNormalization(variance_correction="biased", name="bn_dense")(x)
    return keras.Model(inputs, x)


def test_keras_file_round_trip(tmp_path):
    rng = np.random.default_rng(12)
    model = small_model()
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            randomize_statistics(layer, rng)
    x = rng.normal(size=(3, 4, 4, 2)).astype("float32")
    path = str(tmp_path / "model.keras")
    model.save(path)

    loaded = keras.saving.load_model(path)

    for name, statistics in (("bn_conv", "population"), ("bn_dense", "moving")):
        layer = loaded.get_layer(name)
        assert isinstance(layer, BatchNormalization)
        assert layer.inference_statistics == statistics
    assert loaded.get_layer("bn_dense").variance_correction == "biased"
    np.testing.assert_array_equal(loaded(x), model(x))  # the saved mix of modes
    outputs = {}
    for statistics in ("moving", "population"):
        for a, b in zip(model.layers, loaded.layers):
            if isinstance(a, BatchNormalization):
                a.inference_statistics = b.inference_statistics = statistics
        outputs[statistics] = model(x, training=False)
        np.testing.assert_array_equal(loaded(x, training=False), outputs[statistics])
    # The two modes really differ, so the comparisons above can fail.
    assert not np.allclose(outputs["moving"], outputs["population"], atol=1e-2)
