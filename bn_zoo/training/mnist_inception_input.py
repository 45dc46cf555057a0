"""MNIST shaped for the Inception networks: the data of the CPU-scale
Figure 3 ablation (`config.data.name = "mnist_inception"`).

Section 4.2 trains the Inception variants on ImageNet, which does not fit a
2-core CPU. This source feeds them real handwritten digits instead: the MNIST
images of `bn_zoo.data.mnist` (TFDS, offline, a `(seed, step)`-determined and
so resumable order), resized bilinearly from 28×28 to `image_size`×
`image_size` (at least 32, the smallest input the Inception factory accepts)
and repeated to 3 channels, then scaled by the model's preprocessing mode
("inception": [-1, 1]). Ten classes.
"""

import ml_collections
import tensorflow as tf
from ml_collections.config_dict import placeholder

from bn_zoo.training.errors import ConfigError

MIN_IMAGE_SIZE = 32  # bn_zoo.models.inception.MIN_SIZE


def _to_rgb(image_size, preprocess):
    def convert(images):
        x = tf.image.resize(tf.cast(images, tf.float32), (image_size, image_size))
        x = tf.repeat(x, 3, axis=-1)
        return preprocess(x) if preprocess is not None else x

    return convert


class MNISTInceptionInput:
    """MNIST, resized and in RGB, for the Inception family.

    Args:
        data: The resolved `config.data`.
        preprocess: Maps images with values in [0, 255] to the model's input
            (`bn_zoo.models.preprocess_input` in the model's mode).
    """

    @staticmethod
    def default_config():
        return ml_collections.ConfigDict({
            "name": "mnist_inception",
            "data_dir": placeholder(str),  # None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
            "train_split": "train",
            "eval_split": "test",
            "image_size": MIN_IMAGE_SIZE,
        })

    @staticmethod
    def check_config(data):
        for field in ("train_split", "eval_split"):
            if not isinstance(data[field], str) or not data[field]:
                raise ConfigError(f"config.data.{field} must be a TFDS split name; "
                                  f"got {data[field]!r}.")
        size = data["image_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < MIN_IMAGE_SIZE:
            raise ConfigError(
                f"config.data.image_size must be an integer >= {MIN_IMAGE_SIZE} (the "
                f"smallest input of the Inception networks); got {size!r}.")

    def __init__(self, data, preprocess=None):
        from bn_zoo.data import mnist

        self._source = mnist.MNIST(
            data_dir=data.data_dir,
            train_split=data.train_split,
            eval_split=data.eval_split,
            preprocess=_to_rgb(data.image_size, preprocess),
        )
        self.num_classes = mnist.NUM_CLASSES

    def train_dataset_fn(self, global_batch_size, seed, start_step):
        def fn(input_context=None):
            return self._source.train_dataset(global_batch_size, seed, start_step, input_context)

        return fn

    def eval_dataset_fn(self, global_batch_size):
        def fn(input_context=None):
            return self._source.eval_dataset(global_batch_size, input_context)

        return fn

    def population_dataset(self, global_batch_size, seed):
        return self._source.train_dataset(global_batch_size, seed)

    def probe_examples(self, num_examples):
        return self._source.eval_examples(num_examples)[0]
