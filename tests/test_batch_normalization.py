"""Training, moving averages, modes, masks and the inference map of
`bn_zoo.layers.BatchNormalization`, each against numpy arithmetic or
`keras.layers.BatchNormalization`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bn_zoo import layers as bn_layers
from bn_zoo.layers import BatchNormalization

EPSILON = 1e-3
MOMENTUM = 0.9
TOL = dict(rtol=1e-5, atol=1e-5)

# (input shape, channel axis): 4-D and 5-D go to the fused kernel, 2-D and
# 3-D to the generic path; channels_last and channels_first for each rank.
SHAPES = [
    ((8, 5), -1),
    ((6, 7, 4), -1),
    ((6, 4, 7), 1),
    ((4, 5, 6, 3), -1),
    ((4, 3, 5, 6), 1),
    ((2, 3, 4, 5, 3), -1),
    ((2, 3, 3, 4, 5), 1),
]
SHAPE_IDS = [f"{len(s)}d-axis{a}" for s, a in SHAPES]


def numpy_batch_norm(x, gamma, beta, axis, epsilon=EPSILON):
    """Algorithm 1 in float64: returns (y, μ_B, biased σ²_B, m')."""
    x = np.asarray(x, np.float64)
    axis = axis % x.ndim
    axes = tuple(i for i in range(x.ndim) if i != axis)
    mean = x.mean(axis=axes)
    variance = x.var(axis=axes)
    y = numpy_affine(x, mean, variance, gamma, beta, axis, epsilon)
    return y, mean, variance, x.size // x.shape[axis]


def numpy_affine(x, mean, variance, gamma, beta, axis, epsilon=EPSILON):
    """Algorithm 1 step 3-4 / Algorithm 2 step 11 with given statistics."""
    shape = [1] * x.ndim
    shape[axis % x.ndim] = -1
    variance = np.asarray(variance, np.float64)
    a = np.asarray(gamma, np.float64) / np.sqrt(variance + epsilon)
    b = np.asarray(beta, np.float64) - a * np.asarray(mean, np.float64)
    return a.reshape(shape) * np.asarray(x, np.float64) + b.reshape(shape)


def random_weights(rng, channels):
    """gamma, beta, moving mean, moving variance, far from their initial values."""
    return [
        rng.uniform(0.5, 2.0, channels).astype("float32"),
        rng.normal(0.0, 1.0, channels).astype("float32"),
        rng.normal(0.0, 1.0, channels).astype("float32"),
        rng.uniform(0.5, 2.0, channels).astype("float32"),
    ]


def make_layer(shape, axis, weights, **kwargs):
    kwargs.setdefault("momentum", MOMENTUM)
    layer = BatchNormalization(axis=axis, epsilon=EPSILON, **kwargs)
    layer.build(shape)
    for variable, value in zip(
        [layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance], weights
    ):
        if variable is not None:
            variable.assign(value)
    return layer


def make_keras_layer(shape, axis, weights):
    layer = keras.layers.BatchNormalization(
        axis=axis, momentum=MOMENTUM, epsilon=EPSILON
    )
    layer.build(shape)
    layer.set_weights(weights)
    return layer


def random_batches(rng, shape, n):
    # A different offset and scale per batch: statistics far from (0, 1) that
    # change from batch to batch.
    return [
        (rng.normal(size=shape) * rng.uniform(0.5, 3.0) + rng.uniform(-2, 2)).astype(
            "float32"
        )
        for _ in range(n)
    ]


# ------------------------------------------------------------ behaviour 1
@pytest.mark.parametrize("shape,axis", SHAPES, ids=SHAPE_IDS)
def test_training_normalizes_with_batch_statistics(shape, axis):
    rng = np.random.default_rng(1)
    weights = random_weights(rng, shape[axis])
    layer = make_layer(shape, axis, weights)
    x = random_batches(rng, shape, 1)[0]

    expected, _, _, count = numpy_batch_norm(x, weights[0], weights[1], axis)
    # Section 3.2: a feature map's statistics are over batch and space.
    assert count == np.prod(shape) // shape[axis]
    np.testing.assert_allclose(layer(x, training=True), expected, **TOL)


@pytest.mark.parametrize(
    "shape,axis", [SHAPES[0], SHAPES[2], SHAPES[3], SHAPES[4]], ids=lambda v: str(v)
)
def test_gradients_match_keras(shape, axis):
    """Biased-variance normalization is the same in both layers, so every
    gradient must be too (fused 4-D path and generic path)."""
    rng = np.random.default_rng(2)
    weights = random_weights(rng, shape[axis])
    ours = make_layer(shape, axis, weights)
    theirs = make_keras_layer(shape, axis, weights)
    x = tf.constant(random_batches(rng, shape, 1)[0])
    # A random projection of the output: the gradient of sum(y) alone is ~0.
    projection = tf.constant(rng.normal(size=shape).astype("float32"))

    def gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * projection)
        return tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])

    for got, want in zip(gradients(ours), gradients(theirs)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ behaviour 2
@pytest.mark.parametrize("shape,axis", SHAPES, ids=SHAPE_IDS)
def test_biased_correction_matches_keras_over_batches(shape, axis):
    rng = np.random.default_rng(3)
    weights = random_weights(rng, shape[axis])
    ours = make_layer(shape, axis, weights, variance_correction="biased")
    theirs = make_keras_layer(shape, axis, weights)
    for x in random_batches(rng, shape, 4):
        np.testing.assert_allclose(
            ours(x, training=True), theirs(x, training=True), **TOL
        )
        np.testing.assert_allclose(ours.moving_mean, theirs.moving_mean, **TOL)
        np.testing.assert_allclose(
            ours.moving_variance, theirs.moving_variance, **TOL
        )
        np.testing.assert_allclose(
            ours(x, training=False), theirs(x, training=False), **TOL
        )


@pytest.mark.parametrize("shape,axis", SHAPES, ids=SHAPE_IDS)
def test_unbiased_moving_variance_uses_bessel_factor(shape, axis):
    rng = np.random.default_rng(4)
    weights = random_weights(rng, shape[axis])
    layer = make_layer(shape, axis, weights)  # variance_correction="unbiased"
    assert layer.variance_correction == "unbiased"
    moving_mean = weights[2].astype(np.float64)
    moving_variance = weights[3].astype(np.float64)
    for x in random_batches(rng, shape, 3):
        layer(x, training=True)
        _, mean, variance, count = numpy_batch_norm(x, weights[0], weights[1], axis)
        moving_mean = MOMENTUM * moving_mean + (1 - MOMENTUM) * mean
        moving_variance = MOMENTUM * moving_variance + (1 - MOMENTUM) * (
            count / (count - 1) * variance
        )
        np.testing.assert_allclose(layer.moving_mean, moving_mean, **TOL)
        np.testing.assert_allclose(layer.moving_variance, moving_variance, **TOL)
    # Inference uses those averages.
    np.testing.assert_allclose(
        layer(x, training=False),
        numpy_affine(x, moving_mean, moving_variance, weights[0], weights[1], axis),
        **TOL,
    )


def test_moving_averages_update_inside_tf_function():
    """In a traced step (as in `fit`) the update runs once per call."""
    rng = np.random.default_rng(5)
    shape, axis = (4, 3, 3, 2), -1
    weights = random_weights(rng, 2)
    layer = make_layer(shape, axis, weights, variance_correction="biased")
    reference = make_keras_layer(shape, axis, weights)
    step = tf.function(lambda x: layer(x, training=True))
    for x in random_batches(rng, shape, 3):
        step(tf.constant(x))
        reference(x, training=True)
    np.testing.assert_allclose(layer.moving_mean, reference.moving_mean, **TOL)
    np.testing.assert_allclose(layer.moving_variance, reference.moving_variance, **TOL)


# ------------------------------------------------------------ behaviour 5
def set_population(layer, rng):
    channels = layer.gamma.shape[0]
    mean = rng.normal(size=channels).astype("float32")
    variance = rng.uniform(0.5, 2.0, channels).astype("float32")
    layer.population_mean.assign(mean)
    layer.population_variance.assign(variance)
    return mean, variance


@pytest.mark.parametrize("statistics", ["moving", "population"])
@pytest.mark.parametrize("shape,axis", [SHAPES[0], SHAPES[4]], ids=lambda v: str(v))
def test_inference_uses_chosen_statistics(shape, axis, statistics):
    rng = np.random.default_rng(6)
    weights = random_weights(rng, shape[axis])
    layer = make_layer(shape, axis, weights, inference_statistics=statistics)
    population = set_population(layer, rng)
    stats = population if statistics == "population" else weights[2:]
    x = random_batches(rng, shape, 1)[0]
    expected = numpy_affine(x, *stats, weights[0], weights[1], axis)
    np.testing.assert_allclose(layer(x, training=False), expected, **TOL)
    np.testing.assert_allclose(layer(x), expected, **TOL)  # training=None
    # The choice can be switched on a built layer.
    other = "moving" if statistics == "population" else "population"
    layer.inference_statistics = other
    other_stats = population if other == "population" else weights[2:]
    np.testing.assert_allclose(
        layer(x), numpy_affine(x, *other_stats, weights[0], weights[1], axis), **TOL
    )


@pytest.mark.parametrize("statistics", ["moving", "population"])
@pytest.mark.parametrize("shape,axis", [SHAPES[0], SHAPES[3]], ids=lambda v: str(v))
def test_frozen_layer_runs_in_inference_mode(shape, axis, statistics):
    rng = np.random.default_rng(7)
    weights = random_weights(rng, shape[axis])
    layer = make_layer(shape, axis, weights, inference_statistics=statistics)
    population = set_population(layer, rng)
    layer.trainable = False
    stats = population if statistics == "population" else weights[2:]
    x = random_batches(rng, shape, 1)[0]

    y = layer(x, training=True)

    np.testing.assert_allclose(
        y, numpy_affine(x, *stats, weights[0], weights[1], axis), **TOL
    )
    np.testing.assert_array_equal(layer.moving_mean, weights[2])
    np.testing.assert_array_equal(layer.moving_variance, weights[3])
    np.testing.assert_array_equal(layer.population_mean, population[0])
    assert layer.trainable_weights == []


# --------------------------------------------------------------- masking
@pytest.mark.parametrize("axis", [-1, 1], ids=["channels_last", "channels_first"])
def test_masked_positions_take_no_part_in_statistics(axis):
    """The mask covers every axis but the channel axis."""
    rng = np.random.default_rng(8)
    shape = (4, 6, 3) if axis == -1 else (4, 3, 6)
    weights = random_weights(rng, 3)
    layer = make_layer(shape, axis, weights)
    x = random_batches(rng, shape, 1)[0]
    mask = rng.uniform(size=(4, 6)) > 0.4
    mask[0, 0] = True  # keep at least two values
    mask[1, 1] = True
    channels_last = x if axis == -1 else np.moveaxis(x, 1, -1)  # a view
    channels_last[~mask] = 100.0  # would dominate the statistics if counted

    y = layer(x, training=True, mask=tf.constant(mask))

    kept = channels_last[mask].astype(np.float64)  # (count, channels)
    mean, variance, count = kept.mean(0), kept.var(0), kept.shape[0]
    expected = numpy_affine(x, mean, variance, weights[0], weights[1], axis)
    if axis == 1:
        y, expected = np.moveaxis(np.asarray(y), 1, -1), np.moveaxis(expected, 1, -1)
    np.testing.assert_allclose(np.asarray(y)[mask], expected[mask], **TOL)
    np.testing.assert_allclose(
        layer.moving_mean, MOMENTUM * weights[2] + (1 - MOMENTUM) * mean, **TOL
    )
    np.testing.assert_allclose(
        layer.moving_variance,
        MOMENTUM * weights[3] + (1 - MOMENTUM) * count / (count - 1) * variance,
        **TOL,
    )


def test_mask_with_wrong_rank_is_refused():
    layer = BatchNormalization()
    x = np.ones((2, 3, 4), "float32")
    with pytest.raises(ValueError, match="one dimension less"):
        layer(x, training=True, mask=np.ones((2, 3, 4), bool))


# ------------------------------------------------------------ behaviour 9
@pytest.mark.parametrize("statistics", ["moving", "population"])
@pytest.mark.parametrize("shape,axis", [SHAPES[0], SHAPES[4]], ids=lambda v: str(v))
def test_inference_affine_is_algorithm_2_step_11(shape, axis, statistics):
    rng = np.random.default_rng(9)
    weights = random_weights(rng, shape[axis])
    layer = make_layer(shape, axis, weights, inference_statistics=statistics)
    population = set_population(layer, rng)
    mean, variance = population if statistics == "population" else weights[2:]

    a_expected = weights[0] / np.sqrt(variance.astype(np.float64) + EPSILON)
    b_expected = weights[1] - a_expected * mean
    for a, b in (layer.inference_affine(), bn_layers.inference_affine(layer)):
        np.testing.assert_allclose(a, a_expected, **TOL)
        np.testing.assert_allclose(b, b_expected, **TOL)

    # Applying the map per channel is the layer's inference output.
    a, b = (np.asarray(t, np.float64) for t in layer.inference_affine())
    broadcast = [1] * len(shape)
    broadcast[axis] = -1
    x = random_batches(rng, shape, 1)[0]
    np.testing.assert_allclose(
        a.reshape(broadcast) * x + b.reshape(broadcast),
        layer(x, training=False),
        **TOL,
    )


def test_inference_affine_without_scale_and_center():
    rng = np.random.default_rng(10)
    weights = random_weights(rng, 4)
    layer = BatchNormalization(scale=False, center=False, epsilon=EPSILON)
    layer.build((3, 4))
    layer.moving_mean.assign(weights[2])
    layer.moving_variance.assign(weights[3])
    a, b = layer.inference_affine()
    a_expected = 1.0 / np.sqrt(weights[3].astype(np.float64) + EPSILON)
    np.testing.assert_allclose(a, a_expected, **TOL)
    np.testing.assert_allclose(b, -a_expected * weights[2], **TOL)


def test_inference_affine_refuses_other_layers_and_unbuilt_layers():
    with pytest.raises(TypeError, match="BatchNormalization"):
        bn_layers.inference_affine(keras.layers.BatchNormalization())
    with pytest.raises(ValueError, match="not built"):
        BatchNormalization().inference_affine()
