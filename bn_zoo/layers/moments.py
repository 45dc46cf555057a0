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

One all-reduce of a (replicas, 1 + 3C) table carries them (each replica fills
its own row), and its gradient is one all-reduce too.
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
    """Chan's combination of every replica's moments, in this replica's frame.

    Args:
        replica: A `tf.distribute` replica context with more than one replica.
        count: This replica's n (float32 scalar).
        shift, delta, m2: This replica's s, δ and M2, float32 `(C,)`.

    Returns:
        `(N, δ, M2)`: the global count, the global mean minus this replica's
        `shift`, and the global sum of squared deviations.
    """
    import tensorflow as tf

    channels = shift.shape[0]
    replicas = replica.num_replicas_in_sync
    row = tf.concat([tf.reshape(tf.cast(count, tf.float32), [1]), shift, delta, m2], 0)
    here = tf.one_hot(replica.replica_id_in_sync_group, replicas, dtype=tf.float32)
    table = replica.all_reduce(tf.distribute.ReduceOp.SUM, here[:, None] * row[None, :])
    counts = table[:, :1]
    shifts, deltas, m2s = tf.split(table[:, 1:], [channels] * 3, axis=1)
    offsets = (shifts - shift[None, :]) + deltas
    total = tf.reduce_sum(counts)
    global_delta = tf.reduce_sum(counts * offsets, axis=0) / tf.maximum(total, 1.0)
    global_m2 = tf.reduce_sum(m2s + counts * tf.square(offsets - global_delta), axis=0)
    return total, global_delta, global_m2


def replica_context():
    """The tf.distribute replica context when there is more than one replica."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context
