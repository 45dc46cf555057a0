"""Bad ImageNet input: one clear error each, naming the problem and the fix."""

import os
import shutil

import pytest
import tensorflow as tf

from bn_zoo.data import DataError, DataNotFoundError, imagenet, tfrecords

NUM_CLASSES = 3


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("good"))
    tfrecords.write_synthetic_imagenet(
        path, num_train=12, num_validation=6, num_classes=NUM_CLASSES,
        image_size=(24, 24), num_train_shards=2, num_validation_shards=1)
    return path


@pytest.fixture
def data_dir(good_dir, tmp_path):
    path = str(tmp_path / "data")
    shutil.copytree(good_dir, path)
    return path


def _config(data_dir, **overrides):
    config = dict(source="tfrecord", data_dir=data_dir, num_classes=NUM_CLASSES,
                  image_size=16, shuffle_buffer_size=8)
    config.update(overrides)
    return config


def _replace_shard(data_dir, name, records):
    path = os.path.join(data_dir, name)
    tfrecords.write_records(path, records)
    return path


def _jpeg():
    return tf.io.encode_jpeg(tf.fill([20, 20, 3], tf.constant(128, tf.uint8))).numpy()


def _example(image, label):
    return tfrecords.make_example(image, label).SerializeToString()


def _read_all(config, training):
    dataset = imagenet.build_dataset(config, 2, training=training)
    for _ in dataset.take(20):
        pass


def test_good_data_validates_and_nothing_is_written(data_dir):
    before = sorted(os.listdir(data_dir))
    imagenet.validate(_config(data_dir), num_files=None, num_records=None)
    assert sorted(os.listdir(data_dir)) == before


@pytest.mark.parametrize("make_dir, match", [
    (lambda root: None, "No data directory: set `data_dir`"),
    (lambda root: os.path.join(root, "missing"), "does not exist"),
    (lambda root: root, "is empty"),
])
def test_missing_or_empty_directory(tmp_path, make_dir, match):
    config = _config(make_dir(str(tmp_path)))
    with pytest.raises(DataNotFoundError, match=match):
        imagenet.validate(config)
    with pytest.raises(DataNotFoundError, match=match):
        imagenet.build_dataset(config, 2, training=True)


def test_no_shard_matches_the_pattern(tmp_path):
    (tmp_path / "train-0-of-1.tfrecord").write_text("x")
    with pytest.raises(DataNotFoundError, match=r"No `train` shard.*train-00000-of-01024"):
        imagenet.validate(_config(str(tmp_path)))


def test_missing_and_mixed_shards(data_dir):
    os.rename(os.path.join(data_dir, "train-00001-of-00002"),
              os.path.join(data_dir, "train-00001-of-00003"))
    with pytest.raises(DataError, match=r"disagree on their count"):
        imagenet.validate(_config(data_dir))
    os.remove(os.path.join(data_dir, "train-00001-of-00003"))
    with pytest.raises(DataError,
                       match=r"1 of the 2 `train` shards are missing.*train-00001-of-00002"):
        imagenet.validate(_config(data_dir))


def test_corrupt_tfrecord(data_dir):
    path = os.path.join(data_dir, "train-00000-of-00002")
    with open(path, "r+b") as f:
        f.seek(0)
        f.write(b"\x00" * 16)  # Break the first record's length and checksum.
    with pytest.raises(DataError, match=rf"{path}: record 0 is corrupt.*copy or convert it again"):
        imagenet.validate(_config(data_dir))
    with pytest.raises(tf.errors.DataLossError):
        _read_all(_config(data_dir), training=True)


def test_truncated_tfrecord_found_by_the_full_check(data_dir):
    path = os.path.join(data_dir, "validation-00000-of-00001")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 100)
    imagenet.validate(_config(data_dir))  # The first record is intact.
    with pytest.raises(DataError, match=rf"{path}: record 5 is corrupt"):
        imagenet.validate(_config(data_dir), num_files=None, num_records=None)


def test_empty_shard(data_dir):
    path = _replace_shard(data_dir, "train-00000-of-00002", [])
    with pytest.raises(DataError, match=rf"{path} holds no records"):
        imagenet.validate(_config(data_dir))


def test_image_that_is_not_a_jpeg(data_dir):
    png = tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8)).numpy()
    path = _replace_shard(data_dir, "train-00000-of-00002", [_example(png, 1)])
    with pytest.raises(DataError, match=rf"{path}, record 0: the image is not JPEG data"):
        imagenet.validate(_config(data_dir))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"(?s)not JPEG data.*{path}, record 0"):
        _read_all(_config(data_dir), training=True)


def test_jpeg_that_does_not_decode(data_dir):
    broken = _jpeg()[:60]
    path = _replace_shard(data_dir, "validation-00000-of-00001", [_example(broken, 1)])
    with pytest.raises(DataError, match=rf"{path}, record 0: the JPEG image does not decode"):
        imagenet.validate(_config(data_dir))
    with pytest.raises(tf.errors.InvalidArgumentError, match="JPEG"):
        _read_all(_config(data_dir), training=False)


def test_record_that_is_not_an_example(data_dir):
    path = _replace_shard(data_dir, "train-00001-of-00002", [b"not a protobuf"])
    with pytest.raises(DataError, match=rf"{path}: record 0 is not a tf.train.Example"):
        imagenet.validate(_config(data_dir), num_files=None)


@pytest.mark.parametrize("stored_label", [0, NUM_CLASSES + 1, -1])
def test_label_out_of_range(data_dir, stored_label):
    # With label_offset=1, stored labels must be 1..NUM_CLASSES.
    path = _replace_shard(data_dir, "train-00000-of-00002", [_example(_jpeg(), stored_label)])
    with pytest.raises(DataError, match=rf"{path}, record 0: stored label {stored_label} "
                                        r"minus label_offset 1.*Set `label_offset`"):
        imagenet.validate(_config(data_dir))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"(?s)Label out of range at.*{path}, record 0"):
        _read_all(_config(data_dir, seed=0), training=True)


def test_missing_label_feature(data_dir):
    example = tf.train.Example(features=tf.train.Features(feature={
        tfrecords.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[_jpeg()]))}))
    path = _replace_shard(data_dir, "train-00000-of-00002", [example.SerializeToString()])
    with pytest.raises(DataError,
                       match=rf"{path}, record 0: stored label -1.*no image/class/label"):
        imagenet.validate(_config(data_dir))


@pytest.mark.parametrize("overrides, match", [
    ({"sorce": "tfrecord"}, r"Unknown input config field\(s\) \['sorce'\]"),
    ({"source": "folder"}, "`source` must be one of"),
    ({"num_classes": 0}, "`num_classes` must be a positive integer"),
    ({"shuffle_buffer_size": 2.5}, "`shuffle_buffer_size` must be a positive integer"),
    ({"label_offset": "1"}, "`label_offset` must be None or an integer"),
    ({"distortion_strength": -0.1}, "`distortion_strength` must be in"),
    ({"dtype": "float64"}, "`dtype` must be one of"),
    ({"area_range": (0.5, 2.0)}, "`area_range`"),
    ({"central_fraction": 1.5}, "`central_fraction`"),
])
def test_bad_config(data_dir, overrides, match):
    with pytest.raises(ValueError, match=match):
        imagenet.dataset_fn(_config(data_dir, **overrides), 4, training=True)
