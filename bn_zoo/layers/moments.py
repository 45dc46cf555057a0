"""Mini-batch moments that stay exact far from zero (Algorithm 1, steps 1-2).

Summing float32 values that sit far from zero loses their low bits: the
naive mean of 200 copies of 1000.7 is off by 2e-3, and the single-pass
E[x²] − E[x]² (what XLA lowers a fused batch norm to) loses the whole
variance once |mean|/std passes about 1e3. Both go away when each channel is
first shifted by one of its own values s:

    d = x − s,   δ = mean(d),   μ_B = s + δ,   σ²_B = mean((d − δ)²)

x − s is exact for every x within a factor of two of s (Sterbenz), δ is of
the order of the spread rather than of the mean, and a constant channel gives
d = 0 exactly, so x̂ = 0 and y = β exactly. The shift has no gradient: the
normalized output does not depend on it.

Across replicas the per-replica `(n_j, s_j, δ_j, M2_j)`, M2 = Σ(d − δ)², are
combined with Chan et al.'s parallel formula, in the frame of each replica's
own shift so that nothing is ever summed at the scale of the mean:

    o_j = (s_j − s) + δ_j,   N = Σ n_j,   δ = Σ n_j o_j / N
    M2 = Σ [M2_j + n_j (o_j − δ)²],   σ²_B = M2 / N

One all-reduce of a (replicas, 1 + 3C) table carries them: each replica
fills its own row, the others are zeros, so the sum is every replica's row
exactly. (`ReplicaContext.all_gather` would need a second collective for the
row sizes on MirroredStrategy.) `bn_zoo.layers.sync` adds the backward pass.
"""

import keras
from keras import ops


def channel_shift(x, channel_axis, mask=None):
    """One value of each channel of `x`, shape `(C,)`, dtype of `x`: the shift s.

    Without a mask, the median of the first values (index 0 of every axis but
    the batch and channel axes) of the first three examples: a value of the
    channel itself, so a constant channel shifts to exactly 0, and never a
    lone outlier among the three. Fewer examples give the first one's value,
    an empty batch zeros. With a mask (one dimension less than `x`), the
    first unmasked value. No gradient flows through it.
    """
    rank = len(x.shape)
    if mask is None:
        first = tuple(
            slice(None) if i == channel_axis else slice(0, 3) if i == 0 else 0
            for i in range(rank)
        )
        candidates = x[first]  # (k, C), k <= 3
        k = candidates.shape[0]
        if k == 3:
            shift = _median_of_three(*ops.unstack(candidates, num=3, axis=0))
        elif k is not None:
            shift = candidates[0] if k else ops.zeros(candidates.shape[1:], x.dtype)
        else:
            # A dynamic batch may hold fewer than three examples, or none: a
            # sum over a one-row slice is that row, over no row zeros.
            k = ops.shape(candidates)[0]
            rows = [ops.sum(candidates[i : i + 1], axis=0) for i in range(3)]
            second = ops.where(k > 1, rows[1], rows[0])
            third = ops.where(k > 2, rows[2], rows[0])
            shift = _median_of_three(rows[0], second, third)
    else:
        flat_mask = ops.reshape(ops.cast(mask, "float32"), (-1,))
        first = ops.one_hot(ops.argmax(flat_mask), ops.shape(flat_mask)[0])
        rows = ops.reshape(ops.moveaxis(x, channel_axis, -1), (-1, x.shape[channel_axis]))
        shift = ops.matmul(ops.cast(first, x.dtype)[None, :], rows)[0]
    return ops.stop_gradient(shift)


def _median_of_three(a, b, c):
    return ops.maximum(ops.minimum(a, b), ops.minimum(ops.maximum(a, b), c))


def expand(vector, channel_axis, rank):
    """A `(C,)` vector reshaped to broadcast along `channel_axis` of a rank-`rank` tensor."""
    if channel_axis == rank - 1:
        return vector  # already broadcasts along the last axis
    shape = [1] * rank
    shape[channel_axis] = -1
    return ops.reshape(vector, shape)


def shifted_moments(d, reduction_axes, channel_axis, count, weights=None):
    """`(δ, M2, d − δ)` of shifted values `d` (float32), over `reduction_axes`.

    δ = Σ w·d / n and M2 = Σ w·(d − δ)², shape `(C,)`; `weights` (a 0/1
    mask broadcast to `d`, or None) drop positions. An empty replica (n = 0)
    gives δ = 0 and M2 = 0 instead of NaN, so it adds nothing to a
    cross-replica combination.
    """
    rank = len(d.shape)
    total = ops.sum(d if weights is None else d * weights, axis=reduction_axes)
    if isinstance(count, float):
        delta = total / max(count, 1.0)
    else:
        delta = total / ops.maximum(count, 1.0)
    centered = d - expand(delta, channel_axis, rank)
    squares = ops.square(centered)
    if weights is not None:
        squares = squares * weights
    return delta, ops.sum(squares, axis=reduction_axes), centered


def all_reduce_moments(replica, count, shift, delta, m2):
    """Chan's combination of every replica's moments, the same on every replica.

    One collective (`sum_over_replicas`) of a (replicas, 1 + 3C) table in
    which this replica fills its own row, so the sum is every row exactly.
    Every replica then combines the rows in the frame of one anchor shift
    s_a, that of the replica with the most values (never an empty one):

        o_j = (s_j − s_a) + δ_j,   δ_a = Σ n_j o_j / N
        σ²_B = Σ [M2_j + n_j (o_j − δ_a)²] / N,   μ_B = s_a + δ_a

    The same operations on the same table give every replica the same bits of
    μ_B, σ²_B and N, so each can update its own copy of the moving statistics.

    Args:
        replica: A `tf.distribute` replica context with more than one replica.
        count: This replica's n: a Python float or a scalar tensor.
        shift, delta, m2: This replica's s, δ and M2, `(C,)`, float32 (or
            float64; the table has their dtype).

    Returns:
        `(N, δ, μ_B, σ²_B)`: the global count (scalar tensor), the global mean
        minus this replica's `shift`, the global mean, and the global biased
        variance M2/N (0 when N = 0).
    """
    import numpy as np
    import tensorflow as tf

    channels = shift.shape[0]
    replicas = replica.num_replicas_in_sync
    dtype = shift.dtype
    if isinstance(count, float):
        count = tf.constant([count], dtype)
    else:
        count = tf.reshape(tf.cast(count, dtype), [1])
    row = tf.concat([count, shift, delta, m2], 0)
    replica_id = tf.get_static_value(replica.replica_id_in_sync_group)
    if replica_id is not None:  # MirroredStrategy: a constant, folded here
        here = tf.constant(np.eye(replicas)[:, int(replica_id), None], dtype)
    else:  # TPUStrategy: a tensor
        here = tf.one_hot(replica.replica_id_in_sync_group, replicas, dtype=dtype)[:, None]
    table = sum_over_replicas(replica, here * row)
    counts, shifts, deltas, m2s = tf.split(table, [1, channels, channels, channels], 1)
    anchor = tf.gather(shifts, tf.argmax(tf.squeeze(counts, 1)))
    offsets = (shifts - anchor) + deltas  # (replicas, C); s_j − s_a is exact near s_a
    total = tf.reduce_sum(counts)
    divisor = tf.maximum(total, 1.0)
    # Sums over replicas as multiply-and-reduce, not matmul: GPUs would round
    # a float32 matmul to TensorFloat-32.
    replicas_axis = tf.constant(0)
    anchored = tf.reduce_sum(counts * offsets, replicas_axis) / divisor
    spread = m2s + counts * tf.square(offsets - anchored)
    variance = tf.reduce_sum(spread, replicas_axis) / divisor
    return total, (anchor - shift) + anchored, anchor + anchored, variance


def sum_over_replicas(replica, value):
    """The sum of `value` over all replicas: one collective, not differentiable.

    `ReplicaContext.all_reduce` wraps its collective in a `tf.custom_gradient`,
    which in graph mode walks the whole graph back from the collective's input
    to find the variables it depends on. Over a network's BN layers that walk
    makes tracing quadratic in depth: minutes for BN-Inception inside the
    trainer's `tf.range` loop. The synchronized layer defines its own gradient
    (`bn_zoo.layers.sync`), so it calls the same collective through the public
    `merge_call` and `batch_reduce_to`, which every strategy implements.

    Args:
        replica: A `tf.distribute.ReplicaContext`.
        value: A tensor, the same shape and dtype on every replica.

    Returns:
        The element-wise sum over the replicas, on every replica.
    """
    import tensorflow as tf

    def reduce(strategy, per_replica):
        return strategy.extended.batch_reduce_to(
            tf.distribute.ReduceOp.SUM, [(per_replica, per_replica)])[0]

    return replica.merge_call(reduce, args=(value,))


def replica_context():
    """The tf.distribute replica context when there is more than one replica."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context
