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
from bn_zoo.training.mnist_input import MNISTInput

MIN_IMAGE_SIZE = 32  # bn_zoo.models.inception.MIN_SIZE


def _to_rgb(image_size, preprocess):
    def convert(images):
        x = tf.image.resize(tf.cast(images, tf.float32), (image_size, image_size))
        x = tf.repeat(x, 3, axis=-1)
        return preprocess(x) if preprocess is not None else x

    return convert


class MNISTInceptionInput(MNISTInput):
    """MNIST, resized and in RGB, for the Inception family.

    Args:
        data: The resolved `config.data`.
        preprocess: Maps images with values in [0, 255] to the model's input
            (`bn_zoo.models.preprocess_input` in the model's mode).
    """

    FIELD_DOCS = {
        **MNISTInput.FIELD_DOCS,
        "image_size": (
            f"Side the 28x28 digits are resized to (bilinear, at least {MIN_IMAGE_SIZE}, "
            "the smallest Inception input), then repeated to 3 channels."),
    }

    @staticmethod
    def default_config():
        return ml_collections.ConfigDict({
            "name": "mnist_inception",
            "data_dir": placeholder(str),
            "train_split": "train",
            "eval_split": "test",
            "image_size": MIN_IMAGE_SIZE,
        })

    @staticmethod
    def check_config(data):
        MNISTInput.check_config(data)
        size = data["image_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < MIN_IMAGE_SIZE:
            raise ConfigError(
                f"config.data.image_size must be an integer >= {MIN_IMAGE_SIZE} (the "
                f"smallest input of the Inception networks); got {size!r}.")

    def _image_transform(self, data, preprocess):
        return _to_rgb(data.image_size, preprocess)
