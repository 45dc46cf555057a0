"""Mixed precision: variables and statistics in
float32, outputs in the compute dtype, close to a float32 numpy reference."""

import keras
import numpy as np
import pytest

from bn_zoo.layers import BatchNormalization

# Output tolerance ~ a few ulps of the compute dtype at |y| <= ~5.
POLICIES = {"mixed_float16": ("float16", 1e-2), "mixed_bfloat16": ("bfloat16", 5e-2)}
EPSILON = 1e-3
MOMENTUM = 0.9


def as_float32(y):
    return np.asarray(keras.ops.cast(y, "float32"))


@pytest.mark.parametrize("policy", sorted(POLICIES), indirect=True)
@pytest.mark.parametrize(
    "shape,axis", [((4, 3, 3, 5), -1), ((4, 5, 3, 3), 1), ((8, 5), -1), ((4, 5, 6), 1)]
)
def test_mixed_precision(policy, shape, axis):
    compute_dtype, tolerance = POLICIES[policy]
    rng = np.random.default_rng(13)
    channels = shape[axis]
    gamma = rng.uniform(0.5, 2.0, channels).astype("float32")
    beta = rng.normal(size=channels).astype("float32")
    layer = BatchNormalization(axis=axis, momentum=MOMENTUM, epsilon=EPSILON)
    layer.build(shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    for variable in layer.weights:
        assert variable.dtype == "float32", variable.path

    moving_mean = np.zeros(channels)
    moving_variance = np.ones(channels)
    broadcast = [1] * len(shape)
    broadcast[axis] = -1
    axes = tuple(i for i in range(len(shape)) if i != axis % len(shape))
    for _ in range(2):
        x = (rng.normal(size=shape) * 2.0 + 1.0).astype("float32")
        y = layer(x, training=True)
        assert keras.backend.standardize_dtype(y.dtype) == compute_dtype

        # Reference: float32/64 arithmetic on the input as the layer sees it,
        # rounded to the compute dtype.
        seen = np.asarray(keras.ops.cast(x, compute_dtype), np.float64)
        mean, variance = seen.mean(axes), seen.var(axes)
        count = seen.size // channels
        expected = gamma.reshape(broadcast) * (
            seen - mean.reshape(broadcast)
        ) / np.sqrt(variance.reshape(broadcast) + EPSILON) + beta.reshape(broadcast)
        np.testing.assert_allclose(
            as_float32(y), expected, atol=tolerance, rtol=tolerance
        )
        # Statistics are accumulated in float32 from the rounded input.
        moving_mean = MOMENTUM * moving_mean + (1 - MOMENTUM) * mean
        moving_variance = MOMENTUM * moving_variance + (1 - MOMENTUM) * (
            count / (count - 1) * variance
        )
        for variable, want in (
            (layer.moving_mean, moving_mean),
            (layer.moving_variance, moving_variance),
        ):
            value = np.asarray(variable)
            assert value.dtype == np.float32
            assert np.all(np.isfinite(value))
            np.testing.assert_allclose(value, want, rtol=1e-4, atol=1e-5)

    y = layer(x, training=False)
    assert keras.backend.standardize_dtype(y.dtype) == compute_dtype
    a = gamma / np.sqrt(moving_variance + EPSILON)
    centered = seen - moving_mean.reshape(broadcast)
    expected = a.reshape(broadcast) * centered + beta.reshape(broadcast)
    np.testing.assert_allclose(as_float32(y), expected, atol=tolerance, rtol=tolerance)
    a, b = layer.inference_affine()
    assert keras.backend.standardize_dtype(a.dtype) == "float32"


def test_policy_is_restored_between_tests():
    assert keras.mixed_precision.global_policy().name == "float32"
