"""The CPU-scale Figure 3 data source (`config.data.name = "mnist_inception"`):
real MNIST, resized to `image_size`, tiled to 3 channels, then preprocessed."""

import os

import numpy as np
import pytest
import tensorflow as tf

from bn_zoo.data import mnist
from bn_zoo.training import inputs
from bn_zoo.training.errors import ConfigError


def make(image_size, preprocess=None):
    data = inputs.default_config("mnist_inception")
    data.image_size = image_size
    data.data_dir = os.environ.get("TFDS_DATA_DIR")
    inputs.check_config(data.to_dict())
    return inputs.create(data, preprocess)


def test_images_are_the_resized_test_images_in_rgb_and_preprocessed():
    source = make(40, preprocess=lambda x: x / 127.5 - 1.0)
    images = np.asarray(source.probe_examples(3))
    raw, _ = mnist.load("test", os.environ.get("TFDS_DATA_DIR"))
    # Bilinear resize of a constant image is the constant; of the digit, the
    # reference is TF's own bilinear resize of the raw uint8 images.
    resized = tf.image.resize(raw[:3].astype("float32"), (40, 40)).numpy()
    expected = np.repeat(resized, 3, axis=-1) / 127.5 - 1.0
    assert images.shape == (3, 40, 40, 3) and source.num_classes == 10
    np.testing.assert_allclose(images, expected, atol=1e-5)
    assert images.min() >= -1.0 and images.max() <= 1.0


def test_training_batches_have_the_requested_shape():
    source = make(32)
    images, labels = next(iter(source.train_dataset_fn(8, seed=0, start_step=0)()))
    assert images.shape == (8, 32, 32, 3) and labels.shape == (8,)


@pytest.mark.parametrize("size", [31, 32.0, True, None])
def test_image_size_below_the_inception_minimum_is_refused(size):
    data = inputs.default_config("mnist_inception").to_dict()
    data["image_size"] = size
    with pytest.raises(ConfigError, match="image_size must be an integer >= 32"):
        inputs.check_config(data)
