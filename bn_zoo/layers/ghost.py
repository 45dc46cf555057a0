"""Ghost Batch Normalization (Hoffer et al., 2017): statistics per virtual batch.

A training batch of n examples is split into n / v ghost batches of
v = `virtual_batch_size` examples, each normalized with its own μ_B and σ²_B
(m' = v·p·q for convolutions). As in tf_keras, the batch is viewed as
`(v, n / v, ...)`: ghost batch j holds examples j, j + n/v, j + 2n/v, ...
The statistics are shifted two-pass moments (`bn_zoo.layers.moments`), with
one shift per channel for all ghost batches.
"""

from keras import ops

from bn_zoo.layers import moments


def split(x, virtual_batch_size):
    """`x` of shape `(n, ...)` viewed as `(v, n / v, ...)`."""
    return ops.reshape(x, (virtual_batch_size, -1) + tuple(_dims(x)[1:]))


def ghost_moments(x, channel_axis, virtual_batch_size):
    """Moments of every ghost batch of a float32 `x`.

    Returns:
        `(centered, mean, variance, count)`: `centered` is x − μ_B of its ghost
        batch, in the split view `(v, n/v, ...)`; `mean` and `variance` (the
        biased σ²_B) have shape `(n/v, C)`; `count` is a ghost batch's m'.
    """
    rank = len(x.shape)
    shift = moments.channel_shift(x, channel_axis)
    d = split(x - moments.expand(shift, channel_axis, rank), virtual_batch_size)
    axis = channel_axis + 1  # the channel axis of the split view
    reduction = [i for i in range(rank + 1) if i not in (1, axis)]
    count = float(virtual_batch_size)
    for i in range(2, rank + 1):
        if i != axis:
            dim = d.shape[i]
            count = count * (dim if dim is not None else ops.cast(ops.shape(d)[i], "float32"))
    delta = ops.sum(d, axis=reduction, keepdims=True) / count
    centered = d - delta
    variance = ops.sum(ops.square(centered), axis=reduction, keepdims=True) / count
    return (
        centered,
        _per_ghost(delta, axis) + shift,
        _per_ghost(variance, axis),
        count,
    )


def per_ghost_broadcast(values, channel_axis, rank):
    """`(n/v, C)` values shaped to broadcast over the split view of a
    rank-`rank` input with channels on `channel_axis`."""
    shape = [1] * (rank + 1)
    shape[1] = -1
    shape[channel_axis + 1] = values.shape[-1]
    return ops.reshape(values, shape)


def _per_ghost(keepdims_values, axis):
    """Keep-dims moments of the split view as `(n/v, C)` (axis 1 precedes
    the channel axis)."""
    rank = len(keepdims_values.shape)
    return ops.squeeze(keepdims_values, axis=[i for i in range(rank) if i not in (1, axis)])


def _dims(x):
    static = x.shape
    dynamic = ops.shape(x)
    return [static[i] if static[i] is not None else dynamic[i] for i in range(len(static))]


def check_divides(name, batch, virtual_batch_size):
    """A ValueError for a static batch size that v does not divide."""
    if batch is not None and batch % virtual_batch_size:
        raise ValueError(divide_message(name, batch, virtual_batch_size))


def divide_message(name, batch, virtual_batch_size):
    return (
        f"BatchNormalization '{name}': virtual_batch_size={virtual_batch_size} "
        f"must divide the training batch size (received a batch of {batch}). Use a "
        f"batch size that is a multiple of {virtual_batch_size} (e.g. "
        "`dataset.batch(size, drop_remainder=True)`), or another "
        "virtual_batch_size. Inference takes any batch size."
    )


def assert_divides(name, x, virtual_batch_size):
    """A run-time assertion that v divides the dynamic batch size of `x`,
    ordered before every later variable access (`bn_zoo.layers.refusal`)."""
    import tensorflow as tf

    from bn_zoo.layers import refusal

    batch = tf.shape(x)[0]
    return tf.debugging.Assert(
        tf.equal(batch % virtual_batch_size, 0),
        [divide_message(name, "a size not known when traced", virtual_batch_size),
         "batch size:", batch],
        name=refusal._MARK,
    )

