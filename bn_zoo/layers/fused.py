"""Batch normalization on TensorFlow's fused kernel, `FusedBatchNormV3`.

4-D and 5-D inputs with the channels first or last take one kernel for the
statistics, the normalization and the scale and shift, and one for its
gradient. In training the kernel runs on the input shifted by one of each
channel's own values, s (`bn_zoo.layers.moments`), so that its moments stay
exact far from zero (under XLA it computes E[x²] − E[x]² in one pass):

    μ_B = s + mean(x − s),   σ²_B = var(x − s)

and its output, which does not depend on s, is the layer's. Dense inputs,
masks, synchronized statistics (`bn_zoo.layers.sync` calls the kernel
itself), ghost batches and dtypes other than float32, float16 and bfloat16
take the generic path.
"""

import keras
from keras import ops

from bn_zoo.layers import moments

_FORMATS = {(4, 3): "NHWC", (4, 1): "NCHW", (5, 4): "NDHWC", (5, 1): "NCDHW"}


def data_format(rank, axis):
    """The `FusedBatchNormV3` layout for a 4-D or 5-D input, else None.

    Dense inputs stay on the generic path: on small (m, d) inputs the fused
    kernel's fixed cost is larger than the two reductions it saves.
    """
    return _FORMATS.get((rank, axis))


def applies(data_format, inputs, mask, synchronized):
    """Whether the fused kernel computes this call."""
    return (
        data_format is not None
        and mask is None
        and not synchronized
        and keras.backend.backend() == "tensorflow"
        and keras.backend.standardize_dtype(inputs.dtype)
        in ("float32", "float16", "bfloat16")
    )


def training(x, channel_axis, gamma, beta, epsilon, data_format):
    """Algorithm 1 on the kernel, for a float32 `x`.

    Returns:
        `(outputs, mean, variance)`: y = γx̂ + β in float32, μ_B, and the
        Bessel-corrected m'/(m'−1)·σ²_B the kernel gives.
    """
    import tensorflow as tf

    shift = moments.channel_shift(x, channel_axis)
    # BiasAdd is the cheapest per-channel subtraction on TensorFlow, and
    # its gradient passes dy through without a reduction.
    shifted = tf.nn.bias_add(
        x, -shift, data_format="N...C" if data_format.endswith("C") else "NC..."
    )
    outputs, delta, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=shifted,
        scale=_scale(gamma, shift.shape),
        offset=_offset(beta, shift.shape),
        mean=tf.zeros((0,), "float32"),
        variance=tf.zeros((0,), "float32"),
        epsilon=epsilon,
        data_format=data_format,
        is_training=True,
    )
    # XLA's single-pass variance can round below zero.
    unbiased_variance = tf.maximum(unbiased_variance, 0.0)
    return outputs, delta + shift, unbiased_variance


def inference(x, gamma, beta, mean, variance, epsilon, data_format):
    """The affine map of Algorithm 2 on the kernel: returns
    γ(x − E[x])/√(Var[x] + ε) + β in the dtype of `x`."""
    import tensorflow as tf

    return tf.raw_ops.FusedBatchNormV3(
        x=x,
        scale=_scale(gamma, mean.shape),
        offset=_offset(beta, mean.shape),
        mean=mean,
        variance=variance,
        epsilon=epsilon,
        data_format=data_format,
        is_training=False,
    )[0]


def _scale(gamma, shape):
    """γ, or ones without `scale` (the kernel always takes one)."""
    if gamma is not None:
        return ops.convert_to_tensor(gamma)
    return ops.ones(shape, "float32")


def _offset(beta, shape):
    """β, or zeros without `center`."""
    if beta is not None:
        return ops.convert_to_tensor(beta)
    return ops.zeros(shape, "float32")
