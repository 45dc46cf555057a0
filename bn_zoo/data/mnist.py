"""MNIST for the experiment of Section 4.1, with a resumable data order.

The images come from TensorFlow Datasets (`tfds.load("mnist")`), read once
into memory as uint8 (47 MB for the 60,000 training images). Nothing is ever
downloaded, and the network is never touched: a data set that is not
prepared under `data_dir` (or `$TFDS_DATA_DIR`) is an error, raised at once,
that says where it looked, how to point at a prepared copy and how to
prepare one on a machine with internet access. (TFDS' own download, on a
machine without internet, retries for minutes before it fails.)

The order of training examples is a pure function of `(seed, step)`: epoch e
visits the examples in the permutation `stateless_shuffle(range(N), (seed, e))`
and global batch i of the epoch is `perm[i·B:(i+1)·B]` (the last `N mod B`
examples of each permutation are left out, a different few every epoch). A run
resumed at step s therefore sees exactly the batches an uninterrupted run sees
from step s on, and two networks trained with the same seed see the same
batches in the same order.

Under `tf.distribute`, every input pipeline (one per worker) takes its
contiguous slice of each global batch and splits it into per-replica batches,
so the replicas of one step together always see the same global batch,
whatever the number of workers and replicas.
"""

import functools
import os

import numpy as np
import tensorflow as tf

from bn_zoo.data import errors, record_files
from bn_zoo.data.tfrecords import DataError, DataNotFoundError

NAME = "mnist"
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)


@functools.lru_cache(maxsize=8)
def _load_split(split, data_dir):
    import tensorflow_datasets as tfds

    builder = tfds.builder(NAME, data_dir=data_dir)
    if not builder.is_prepared():
        where = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
        raise DataNotFoundError(
            f"The MNIST data set is not prepared under {where!r} (TFDS looked "
            f"for {builder.data_dir}), and bn_zoo never downloads it. Point at "
            "a prepared copy with --data_dir=DIR (or config.data.data_dir, or "
            "the TFDS_DATA_DIR environment variable), e.g. "
            "TFDS_DATA_DIR=../shared/tensorflow_datasets, or prepare one on a "
            "machine with internet access (an 11 MB download) with `python -c \"import "
            "tensorflow_datasets as tfds; tfds.builder('mnist', data_dir='DIR')"
            ".download_and_prepare()\"` and copy DIR here."
        )
    # A damaged file of the prepared set: named, with how to prepare it again.
    with errors.named_data_errors(lambda: record_files.tfds_record_files(builder, [split])):
        try:
            arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        except (ValueError, KeyError) as error:
            raise DataError(
                f"MNIST has no split {split!r} ({error}). Use 'train', 'test' or a "
                "TFDS slice of them such as 'train[:6000]'."
            ) from error
    images = np.ascontiguousarray(arrays["image"], dtype=np.uint8)
    labels = np.asarray(arrays["label"], dtype=np.int32)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load(split, data_dir=None):
    """The images (uint8, `[N, 28, 28, 1]`) and labels (int32, `[N]`) of a split.

        images, labels = bn_zoo.data.mnist.load("test")   # 10,000 test images

    Read from the MNIST that TensorFlow Datasets prepared under `data_dir`,
    into memory; nothing is ever downloaded. Cached per process, so both
    networks of Figure 1 share one copy; the arrays are read-only (copy them
    to change them). Pixels are 0-255: scale them as the model expects
    (`bn_zoo.preprocess_input(images, mode="mnist")`, x / 255).

    Args:
        split: A TFDS split of MNIST, `"train"` (60,000) or `"test"`
            (10,000), or a slice such as `"train[:6000]"`.
        data_dir: TFDS data directory; None: `$TFDS_DATA_DIR`, else
            `~/tensorflow_datasets`.

    Raises:
        DataNotFoundError: MNIST is not prepared under `data_dir`.
        DataError: `split` is not a split of MNIST, or a file of it is
            damaged (named, with how to prepare MNIST again).
    """
    if data_dir is not None:
        data_dir = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    return _load_split(str(split), data_dir)


def _check_batch(global_batch_size, input_context):
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int):
        raise TypeError(f"The global batch size must be an int; got {global_batch_size!r}.")
    if global_batch_size < 1:
        raise ValueError(f"The global batch size must be >= 1; got {global_batch_size}.")
    if input_context is None:
        return 1, 0, 1
    pipelines = input_context.num_input_pipelines
    replicas = input_context.num_replicas_in_sync
    if global_batch_size % replicas or replicas % pipelines:
        raise ValueError(
            f"A global batch of {global_batch_size} does not split evenly among "
            f"{replicas} replicas in {pipelines} input pipelines. Use a global "
            f"batch size that is a multiple of {replicas}."
        )
    return pipelines, input_context.input_pipeline_id, replicas // pipelines


def _replica_batches(index_batches, images, labels, preprocess, global_batch_size,
                     input_context, with_weights=False):
    """Global index batches -> this pipeline's per-replica (x, y[, w]) batches."""
    pipelines, pipeline_id, local_replicas = _check_batch(global_batch_size, input_context)
    local = global_batch_size // pipelines
    per_replica = local // local_replicas
    start = pipeline_id * local

    def split(indices, *weights):
        parts = [tf.reshape(indices[start:start + local], [local_replicas, per_replica])]
        parts += [tf.reshape(w[start:start + local], [local_replicas, per_replica]) for w in weights]
        return tuple(parts) if weights else parts[0]

    def gather(indices, *weights):
        x = tf.gather(images, indices)
        if preprocess is not None:
            x = preprocess(x)
        batch = (x, tf.gather(labels, indices))
        return batch + tuple(weights)

    dataset = index_batches.map(split).unbatch()
    return dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class MNIST:
    """The MNIST training and evaluation pipelines of one run.

    Args:
        data_dir: TFDS data directory holding a prepared `mnist`; None uses
            `$TFDS_DATA_DIR` (else `~/tensorflow_datasets`).
        train_split, eval_split: TFDS split names (slices allowed).
        preprocess: Optional function applied to each batch of uint8 images,
            e.g. `functools.partial(bn_zoo.models.preprocess_input, mode="mnist")`.
    """

    num_classes = NUM_CLASSES
    image_shape = IMAGE_SHAPE

    def __init__(self, data_dir=None, train_split="train", eval_split="test", preprocess=None):
        self._train = load(train_split, data_dir)
        self._eval = load(eval_split, data_dir)
        self._preprocess = preprocess

    @property
    def num_train_examples(self):
        return len(self._train[1])

    @property
    def num_eval_examples(self):
        return len(self._eval[1])

    def steps_per_epoch(self, global_batch_size):
        """Global batches in one pass over the training split."""
        steps = self.num_train_examples // global_batch_size
        if steps < 1:
            raise ValueError(
                f"The training split has {self.num_train_examples} examples, fewer "
                f"than one global batch of {global_batch_size}."
            )
        return steps

    def train_dataset(self, global_batch_size, seed, start_step=0, input_context=None):
        """Endless training batches from global step `start_step` on.

        Returns a dataset of `(images, labels)`: per-replica batches with an
        `input_context` (for `distribute_datasets_from_function`), global
        batches without. Images are preprocessed, labels int32.
        """
        if start_step < 0:
            raise ValueError(f"`start_step` must be >= 0; got {start_step}.")
        steps = self.steps_per_epoch(global_batch_size)
        n = self.num_train_examples
        seed = int(seed)

        def epoch(e):
            perm = tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int32), seed=tf.stack([tf.constant(seed, tf.int64), e])
            )
            return tf.data.Dataset.from_tensor_slices(
                tf.reshape(perm[: steps * global_batch_size], [steps, global_batch_size])
            )

        first_epoch, offset = divmod(int(start_step), steps)
        indices = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch)
        indices = indices.skip(offset)
        images, labels = (tf.constant(a) for a in self._train)
        dataset = _replica_batches(
            indices, images, labels, self._preprocess, global_batch_size, input_context
        )
        return dataset.prefetch(tf.data.AUTOTUNE)

    def eval_dataset(self, global_batch_size, input_context=None):
        """The whole evaluation split once, as `(images, labels, weights)`.

        The split is padded to a whole number of global batches with examples
        of weight 0, so every replica of every worker runs the same number of
        steps of the same shape, and weighted sums count each real example once.
        """
        n = self.num_eval_examples
        num_batches = -(-n // global_batch_size)
        padded = num_batches * global_batch_size
        indices = np.minimum(np.arange(padded), n - 1).astype(np.int32)
        weights = (np.arange(padded) < n).astype(np.float32)
        index_batches = tf.data.Dataset.from_tensor_slices((
            indices.reshape(num_batches, global_batch_size),
            weights.reshape(num_batches, global_batch_size),
        ))
        images, labels = (tf.constant(a) for a in self._eval)
        dataset = _replica_batches(
            index_batches, images, labels, self._preprocess, global_batch_size, input_context
        )
        return dataset.prefetch(tf.data.AUTOTUNE)

    def eval_examples(self, num_examples):
        """The first `num_examples` evaluation images (preprocessed) and labels:
        a fixed batch, e.g. for the activation percentiles of Figure 1(b, c)."""
        if not 0 < num_examples <= self.num_eval_examples:
            raise ValueError(
                f"Asked for {num_examples} evaluation examples; the split has "
                f"{self.num_eval_examples}."
            )
        images, labels = self._eval
        x = tf.constant(images[:num_examples])
        if self._preprocess is not None:
            x = self._preprocess(x)
        return x, tf.constant(labels[:num_examples])
