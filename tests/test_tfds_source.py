"""`config.data.name = "tfds"`: any TFDS image classification set prepared
under `data_dir`. Two real ones, offline: TFDS' MNIST (PNG, grey) from
TFDS_DATA_DIR and `photo_classes`, JPEG crops of scikit-image's photos
prepared here (tests/photo_data.py).

The evaluation images are compared with TFDS' own decoding of the same
examples plus a float64 numpy crop and resize; class names come from the
`ClassLabel`. Refusals: an unknown name (with the close ones), a set that
is not prepared, one that is not image classification, an unknown split,
fewer examples than a global batch, an image key that is not an image.
"""

import os

import numpy as np
import pytest

import photo_data
from bn_zoo.data import DataError, DataNotFoundError
from bn_zoo.data.sources import ModelInput
from bn_zoo.data.tfds_source import TFDSInput

MNIST_READY = os.path.isdir(os.path.join(os.environ.get("TFDS_DATA_DIR", "/nonexistent"),
                                         "mnist"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    where = str(tmp_path_factory.mktemp("tfds"))
    photo_data.prepare_photo_builder(where, num_train=12, num_test=5)
    photo_data.prepare_not_classification(where)
    return where


def _source(model_input=ModelInput((20, 20, 3)), preprocess=None, **fields):
    data = TFDSInput.default_config()
    data.update(fields)
    TFDSInput.check_config(data)
    return TFDSInput(data, preprocess, model_input)


def test_photos_eval_images_match_tfds_decoding(data_dir):
    import tensorflow_datasets as tfds

    source = _source(preprocess=lambda x: x / 255.0, dataset="photo_classes",
                     data_dir=data_dir)
    assert source.class_names == list(photo_data.PHOTOS) and source.num_classes == 4
    assert (source.num_train_examples, source.num_eval_examples) == (12, 5)
    images, labels, weights = [np.concatenate(t) for t in zip(*source.eval_dataset(4))]
    np.testing.assert_array_equal(weights, [1] * 5 + [0] * 3)
    stored = tfds.builder("photo_classes", data_dir=data_dir).as_dataset(
        split="test", shuffle_files=False)
    for i, example in enumerate(tfds.as_numpy(stored)):
        assert labels[i] == example["label"]
        expected = photo_data.central_crop_resize(example["image"], 20, 20, 0.875) / 255.0
        np.testing.assert_allclose(images[i], expected, atol=1e-5)


@pytest.mark.skipif(not MNIST_READY, reason="needs TFDS_DATA_DIR's prepared MNIST")
def test_mnist_grey_digits_to_rgb():
    import tensorflow_datasets as tfds

    source = _source(ModelInput((14, 14, 3), crop_fraction=1.0), dataset="mnist",
                     train_split="train[:64]", eval_split="test[:6]")
    assert source.class_names == [str(d) for d in range(10)]
    images, labels, _ = next(iter(source.eval_dataset(6)))
    stored = tfds.as_numpy(tfds.load("mnist", split="test[:6]", shuffle_files=False))
    for i, example in enumerate(stored):
        assert labels[i] == example["label"]
        expected = photo_data.bilinear_resize(example["image"], 14, 14)
        np.testing.assert_allclose(images[i], np.repeat(expected, 3, axis=-1), atol=1e-3)


def test_refusals(data_dir, tmp_path):
    with pytest.raises(DataError, match=r"no data set config.data.dataset='mnistt'\. Did "
                                        r"you mean mnist"):
        _source(dataset="mnistt", data_dir=data_dir)
    with pytest.raises(DataNotFoundError, match=rf"'photo_classes' is not prepared under "
                                                rf"'{tmp_path}'.*never downloads"):
        _source(dataset="photo_classes", data_dir=str(tmp_path))
    with pytest.raises(DataError, match="'not_classification' is not an image classification "
                                        "data set.*x: Tensor"):
        _source(dataset="not_classification", data_dir=data_dir)
    with pytest.raises(DataError, match="has no split 'validation'.*Its splits: train, test"):
        _source(dataset="photo_classes", data_dir=data_dir, eval_split="validation")
    with pytest.raises(DataError, match="has no Image feature 'label'"):
        _source(dataset="photo_classes", data_dir=data_dir, image_key="label")
    source = _source(dataset="photo_classes", data_dir=data_dir)
    with pytest.raises(DataError, match="'train' has 12 examples, fewer than one global batch "
                                        "of 16"):
        source.train_dataset_fn(16, 0, 0)


@pytest.mark.parametrize("fields, message", [
    ({"dataset": None}, "config.data.dataset is not set"),
    ({"shuffle_window": 0}, "shuffle_window must be an integer >= 1"),
    ({"eval_split": ""}, "eval_split must be a TFDS split name"),
    ({"crop_aspect_ratio_range": (2.0, 1.0)}, "crop_aspect_ratio_range must be"),
])
def test_config_checks(fields, message):
    data = TFDSInput.default_config().to_dict()
    data["dataset"] = "cifar10"
    data.update(fields)
    with pytest.raises(ValueError, match=message):
        TFDSInput.check_config(data)
