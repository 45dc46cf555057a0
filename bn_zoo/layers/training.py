"""Algorithm 1 on the generic path, for ghost batches, and for renorm.

The training computations of `BatchNormalization` that are not the fused
kernel (`bn_zoo.layers.fused`): the generic path from `keras.ops` (any rank,
masks, synchronized replicas through `bn_zoo.layers.sync`), ghost batches
(`bn_zoo.layers.ghost`), Batch Renormalization's correction of a normalized
output (`bn_zoo.layers.renorm`), and the refusal of a step with m' <= 1
(`bn_zoo.layers.refusal`). Each takes the layer for its configuration and
variables; the layer records or applies the statistics they return.
"""

import math

import keras
from keras import ops

from bn_zoo.layers import ghost, moments


def generic(layer, inputs, mask):
    """Algorithm 1 with shifted moments (see `bn_zoo.layers.moments`).

    Returns (outputs, μ_B, biased σ²_B, m'), all over the global batch
    when synchronized (`bn_zoo.layers.sync`).
    """
    x = to_float32(inputs)
    axis, rank = layer._channel_axis, len(x.shape)
    replica = moments.replica_context() if layer.synchronized else None
    if replica is not None:
        from bn_zoo.layers import sync

        outputs, mean, variance, count = sync.batch_normalization(
            x, replica, axis, layer.epsilon,
            gamma=None if layer.gamma is None else ops.convert_to_tensor(layer.gamma),
            beta=None if layer.beta is None else ops.convert_to_tensor(layer.beta),
            mask=mask, data_format=layer._fused_format,
        )
        return ops.cast(outputs, layer.compute_dtype), mean, variance, count
    if mask is None:
        weights = None
        count = local_count(x, layer._reduction_axes)
    else:
        # The mask covers every axis but the channel axis.
        weights = ops.broadcast_to(
            ops.expand_dims(ops.cast(mask, "float32"), axis), ops.shape(x)
        )
        # m' is the same for every channel: count channel 0's weights.
        count = ops.sum(ops.take(weights, 0, axis=axis))
    shift = moments.channel_shift(x, axis, mask)
    d = x - moments.expand(shift, axis, rank)
    delta, m2, centered = moments.shifted_moments(
        d, layer._reduction_axes, axis, count, weights
    )
    variance = m2 / count
    multiplier = ops.rsqrt(variance + layer.epsilon)
    if layer.gamma is not None:
        multiplier = multiplier * layer.gamma
    outputs = centered * moments.expand(multiplier, axis, rank)
    if layer.beta is not None:
        outputs = outputs + moments.expand(layer.beta, axis, rank)
    return ops.cast(outputs, layer.compute_dtype), shift + delta, variance, count


def ghost_batches(layer, inputs, mask):
    """Algorithm 1 on each ghost batch (`bn_zoo.layers.ghost`), with
    Batch Renormalization's (r, d) per ghost batch when `renorm`.

    Returns (outputs, mean over the ghost batches of μ_B and of σ²_B, a ghost
    batch's m', and under renorm the mean of √(c·σ²_B + ε), else None).
    """
    if mask is not None:
        raise ValueError(
            f"BatchNormalization '{layer.name}': a mask is not supported with "
            "`virtual_batch_size` (ghost batches would hold different "
            "numbers of values). Drop the mask or the virtual batches."
        )
    size = layer.virtual_batch_size
    x = to_float32(inputs)
    if x.shape[0] is not None:
        ghost.check_divides(layer.name, x.shape[0], size)
    elif keras.backend.backend() == "tensorflow":
        (x,) = after(ghost.assert_divides(layer.name, x, size), [x])
    axis, rank = layer._channel_axis, len(x.shape)
    centered, mean, variance, count = ghost.ghost_moments(x, axis, size)
    if isinstance(count, float) and count <= 1:
        raise ValueError(single_value_message(layer.name, inputs.shape))
    dtype = keras.backend.standardize_dtype(x.dtype)
    multiplier = ops.rsqrt(variance + layer.epsilon)
    offset = ops.zeros_like(mean)
    if layer.renorm:
        r, d = layer._renorm_correction(mean, variance)
        multiplier, offset = multiplier * r, d
    if layer.gamma is not None:
        gamma = ops.cast(layer.gamma, dtype)
        multiplier, offset = multiplier * gamma, offset * gamma
    if layer.beta is not None:
        offset = offset + ops.cast(layer.beta, dtype)
    outputs = centered * ghost.per_ghost_broadcast(multiplier, axis, rank)
    outputs = outputs + ghost.per_ghost_broadcast(offset, axis, rank)
    outputs = ops.reshape(outputs, ops.shape(x))
    stddev = None
    if layer.renorm:
        corrected = variance
        if layer.variance_correction == "unbiased":
            corrected = variance * (count / (count - 1.0))
        stddev = ops.mean(ops.sqrt(corrected + layer.epsilon), axis=0)
    return (
        ops.cast(outputs, layer.compute_dtype),
        ops.mean(mean, axis=0),
        ops.mean(variance, axis=0),
        count,
        stddev,
    )


def renormalize(layer, outputs, mean, biased):
    """γ(x̂·r + d) + β from y = γx̂ + β, as r·y + (γd + β(1 − r)): the
    fused kernel gives y, and r, d need the statistics it computes."""
    dtype = keras.backend.standardize_dtype(mean.dtype)
    r, d = layer._renorm_correction(mean, biased)
    shift = d
    if layer.gamma is not None:
        shift = shift * ops.cast(layer.gamma, dtype)
    if layer.beta is not None:
        shift = shift + ops.cast(layer.beta, dtype) * (1.0 - r)
    axis, rank = layer._channel_axis, len(outputs.shape)
    y = ops.cast(outputs, dtype) * moments.expand(r, axis, rank)
    y = y + moments.expand(shift, axis, rank)
    return ops.cast(y, layer.compute_dtype)


def local_count(x, reduction_axes):
    """This replica's m': a Python float when the shape is static, else a
    float32 tensor."""
    count = 1
    for i in reduction_axes:
        dim = x.shape[i]
        count = count * (dim if dim is not None else ops.shape(x)[i])
    if isinstance(count, int):
        return float(count)
    return ops.cast(count, "float32")


def count_check(layer, inputs, count, mask):
    """Refuses m' <= 1: at trace time when m' is static (ValueError), else
    returns a run-time assertion to run before anything uses the step's
    results (None where m' is already known to exceed 1)."""
    if isinstance(count, float):
        if count <= 1:
            raise ValueError(single_value_message(layer.name, inputs.shape))
        return None
    known = math.prod(inputs.shape[i] or 1 for i in layer._reduction_axes)
    if (mask is None and known > 1) or (
        keras.backend.backend() != "tensorflow"
    ):
        return None
    from bn_zoo.layers import refusal

    return refusal.assert_more_than_one(
        count, single_value_message(layer.name, inputs.shape)
    )


def single_value_message(name, shape):
    return (
        f"BatchNormalization '{name}' expected more than 1 value per channel when "
        f"training (input shape {tuple(shape)} gives m' <= 1, after any mask, and "
        "the variance is undefined). Use a batch of at least 2, or call the layer "
        "with training=False."
    )


def after(check, tensors):
    """`tensors`, each made to wait for the assertion `check`."""
    import tensorflow as tf

    with tf.control_dependencies([check]):
        return [tf.identity(t) for t in tensors]


def to_float32(x):
    """float16 and bfloat16 inputs are normalized in float32."""
    if keras.backend.standardize_dtype(x.dtype) in ("float16", "bfloat16"):
        return ops.cast(x, "float32")
    return x
