"""Synchronized Batch Normalization: two collectives per layer per step.

Under a `tf.distribute` strategy, Algorithm 1's μ_B and σ²_B are taken over
the global batch of all replicas. The forward pass makes one collective: each
replica's (n_j, s_j, δ_j, M2_j) go into one all-reduce and are combined with
Chan's parallel formula (`bn_zoo.layers.moments`). The backward pass makes one
more. With x̂ = (x − μ_B)/√(σ²_B + ε), y = γx̂ + β and N the global count,

    ∂L/∂β = Σ dy,   ∂L/∂γ = Σ dy·x̂          (this replica's positions)
    ∂L/∂x_i = γ/√(σ²_B + ε) · (dy_i − w_i (S_dy + x̂_i S_dyx̂) / N)

where S_dy = Σ dy and S_dyx̂ = Σ dy·x̂ run over every replica's positions,
and w_i is the mask (1 without one). A custom gradient therefore all-reduces
the two per-channel sums, stacked into one tensor: PyTorch's SyncBatchNorm
scheme. ∂L/∂x is the gradient of the sum of every replica's loss, as on one
device with the global batch; ∂L/∂γ and ∂L/∂β are this replica's share, which
the optimizer's all-reduce adds up.

Both collectives are `moments.sum_over_replicas`: `merge_call` and
`batch_reduce_to`, which every strategy implements (MirroredStrategy,
MultiWorkerMirroredStrategy, TPUStrategy), without the graph walk of
`ReplicaContext.all_reduce`'s gradient wrapper. On
the fused layouts (4-D and 5-D float32 inputs without a mask) the three
passes over the activations are `FusedBatchNormV3` and `FusedBatchNormGradV3`
in inference mode, on the shifted input d = x − s with the global statistics
given: y = FBN(d; γ, β, δ, σ²), then (γ/√(σ²+ε)·dy, Σ dy·x̂, Σ dy) = FBNGrad,
and the correction above, an affine map of x̂, is one more FBN(d) with scale
γ S_dyx̂ /(N√(σ²+ε)) and offset γ S_dy /(N√(σ²+ε)), subtracted. Keeping the graph this
small keeps the trace, which dominates the first step, cheap.

The inference-mode gradient kernel exists for every layout only on GPUs and,
for 4-D NCHW, under oneDNN; TensorFlow's CPU kernel takes channels-last
alone ("only support NHWC tensor format"), which is what a CPU without
AVX-512 (or `TF_ENABLE_ONEDNN_OPTS=0`) runs, and oneDNN has no NCDHW one. So
a channels-first backward pass runs in channels-last, between transposes,
as TensorFlow's own gradient of the kernel in inference mode does.
"""

import tensorflow as tf

from bn_zoo.layers import moments


def batch_normalization(
    x, replica, channel_axis, epsilon, gamma=None, beta=None, mask=None, data_format=None
):
    """Algorithm 1 over the global batch of all replicas.

    Args:
        x: This replica's input, float32 (or float64), rank >= 2.
        replica: The `tf.distribute.ReplicaContext`, with more than one replica.
        channel_axis: The channel axis of `x`, non-negative.
        epsilon: ε.
        gamma, beta: `(C,)` tensors, or None when the layer has no scale or
            no offset.
        mask: Optional 0/1 mask of rank `rank(x) − 1`: masked positions take
            no part in the statistics (their outputs are still normalized).
        data_format: The `FusedBatchNormV3` layout of `x` ("NHWC", ...), or
            None. The fused kernels run only for float32 without a mask.

    Returns:
        `(y, μ_B, σ²_B, N)`: the output (dtype of `x`), the global mean and
        biased variance, and the global count m' (scalar tensor). Only `y`
        has a gradient.
    """
    rank = len(x.shape)
    axes = tf.constant([i for i in range(rank) if i != channel_axis])
    dtype = x.dtype
    channels = x.shape[channel_axis]
    fused = data_format is not None and mask is None and dtype == tf.float32
    params = [tf.convert_to_tensor(p) for p in (gamma, beta) if p is not None]
    last_format, to_last, to_first = _CHANNELS_LAST.get(data_format, (data_format, None, None))
    statistics = {}

    def expand(vector):
        return moments.expand(vector, channel_axis, rank)

    @tf.custom_gradient
    def normalize(x, *params):
        params = list(params)
        scale = params.pop(0) if gamma is not None else tf.ones([channels], dtype)
        offset = params.pop(0) if beta is not None else tf.zeros([channels], dtype)
        shift = moments.channel_shift(x, channel_axis, mask)
        d = x - expand(shift)
        count, weights = _local_count(x, axes, channel_axis, mask)
        local_delta, local_m2 = _local_moments(d, axes, expand, count, weights)
        total, delta, mean, variance = moments.all_reduce_moments(
            replica, count, shift, local_delta, local_m2
        )
        statistics.update(mean=mean, variance=variance, count=total)
        inverse = tf.math.rsqrt(variance + epsilon)
        if fused:
            y, _, _, _, _, reserve = _fused(d, scale, offset, delta, variance, epsilon, data_format)
        else:
            normalized = (d - expand(delta)) * expand(inverse)
            y = normalized * expand(scale) + expand(offset)

        def grad(dy):
            if fused:
                # Inference mode, channels-last: γ/√(σ²+ε)·dy, Σ dy·x̂ and Σ dy.
                if to_last is not None:
                    dy, d_last = tf.transpose(dy, to_last), tf.transpose(d, to_last)
                else:
                    d_last = d
                dx, dscale, doffset, _, _ = tf.raw_ops.FusedBatchNormGradV3(
                    y_backprop=dy, x=d_last, scale=scale, reserve_space_1=delta,
                    reserve_space_2=variance, reserve_space_3=reserve,
                    epsilon=epsilon, data_format=last_format, is_training=False,
                )
            else:
                doffset = tf.reduce_sum(dy, axes)
                dscale = tf.reduce_sum(dy * normalized, axes)
                dx = dy * expand(scale * inverse)
            sums = moments.sum_over_replicas(replica, tf.stack([doffset, dscale]))
            # γ/(N√(σ²+ε)) · (S_dy, S_dyx̂): the offset and scale of the
            # correction x̂ ↦ γ (S_dy + x̂ S_dyx̂)/(N√(σ²+ε)), subtracted.
            factor = scale * inverse / tf.maximum(total, 1.0)
            correction_offset, correction_scale = tf.unstack(sums * factor)
            if fused:
                correction = _fused(
                    d_last, correction_scale, correction_offset, delta, variance, epsilon,
                    last_format,
                )[0]
            else:
                correction = normalized * expand(correction_scale) + expand(correction_offset)
                if weights is not None:
                    correction = correction * weights
            dx = dx - correction
            if fused and to_first is not None:
                dx = tf.transpose(dx, to_first)
            grads = [dx]
            if gamma is not None:
                grads.append(dscale)
            if beta is not None:
                grads.append(doffset)
            return grads

        return y, grad

    y = normalize(x, *params)
    # Made inside the custom gradient, which records nothing on the tape:
    # the statistics carry no gradient.
    return y, statistics["mean"], statistics["variance"], statistics["count"]


# A channels-first layout's channels-last twin, and the permutations there and back.
_CHANNELS_LAST = {
    "NCHW": ("NHWC", [0, 2, 3, 1], [0, 3, 1, 2]),
    "NCDHW": ("NDHWC", [0, 2, 3, 4, 1], [0, 4, 1, 2, 3]),
}


def _local_count(x, axes, channel_axis, mask):
    """This replica's n (a Python float when static) and the 0/1 weights
    broadcast to `x` (None without a mask)."""
    if mask is not None:
        weights = tf.broadcast_to(
            tf.expand_dims(tf.cast(mask, x.dtype), channel_axis), tf.shape(x)
        )
        return tf.reduce_sum(tf.gather(weights, 0, axis=channel_axis)), weights
    static = [x.shape[i] for i in range(len(x.shape)) if i != channel_axis]
    if None not in static:
        count = 1.0
        for size in static:
            count *= size
        return count, None
    return tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), x.dtype), None


def _local_moments(d, axes, expand, count, weights):
    """δ = Σ w·d / n and M2 = Σ w·(d − δ)², two-pass; 0 for an empty replica."""
    if weights is not None:
        d_sum = tf.reduce_sum(d * weights, axes)
    else:
        d_sum = tf.reduce_sum(d, axes)
    if isinstance(count, float):
        delta = d_sum / max(count, 1.0)
    else:
        delta = d_sum / tf.maximum(count, 1.0)
    squares = tf.math.squared_difference(d, expand(delta))
    if weights is not None:
        squares = squares * weights
    return delta, tf.reduce_sum(squares, axes)


def _fused(d, scale, offset, mean, variance, epsilon, data_format):
    """`FusedBatchNormV3` in inference mode: scale·(d − mean)/√(variance + ε) + offset."""
    return tf.raw_ops.FusedBatchNormV3(
        x=d, scale=scale, offset=offset, mean=mean, variance=variance,
        epsilon=epsilon, data_format=data_format, is_training=False,
    )
