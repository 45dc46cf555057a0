"""Data orders that are pure functions of (seed, epoch): what makes a
resumed run read exactly the batches of an uninterrupted one.

`tf.data`'s shuffle buffer cannot be skipped ahead without replaying it, and
its order also depends on TensorFlow's global seed. The streaming sources
(`tfds`, `imagenet`) permute windows of consecutive examples instead, with
stateless ops seeded by (seed, epoch, window): the same seed gives the same
order in any process, and the examples before a resume point only need to
be read, not decoded, to skip them.
"""

import numpy as np
import tensorflow as tf


def window_shuffle(dataset, window, seed):
    """`dataset` with each run of `window` consecutive elements permuted.

    Window w (the last may be shorter) is permuted by
    `stateless_shuffle(range(len), fold_in(seed, w))`. The next window is
    read while this one is used, so up to 2 · `window` elements are held.

    Args:
        dataset: Elements of scalars (any nest of them).
        window: Elements per window; 1 keeps the order.
        seed: `[2]` int64 tensor.
    """
    if window <= 1:
        return dataset

    def permute(w, batch):
        count = tf.shape(tf.nest.flatten(batch)[0])[0]
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count), seed=tf.random.experimental.stateless_fold_in(seed, w))
        return tf.nest.map_structure(lambda v: tf.gather(v, order), batch)

    return dataset.batch(window).enumerate().map(permute).prefetch(1).unbatch()


def epochs(make_epoch, first_epoch=0):
    """The endless concatenation of `make_epoch(e)` for e = first_epoch, ...
    (`e` an int64 scalar tensor)."""
    return tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(make_epoch)


def epoch_seed(seed, salt, epoch):
    """`[2]` int64 seed of `epoch` (a tensor) for stream `salt` of `seed`."""
    return tf.random.experimental.stateless_fold_in(
        tf.constant([int(seed), int(salt)], tf.int64), epoch)
