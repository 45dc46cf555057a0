"""The TensorFlow Datasets source, with `tfds.testing.mock_data` (offline).

`mock_data` with `MockPolicy.USE_CODE` builds random `imagenet2012` examples
from the builder's code alone: no metadata download, no prepared data.
"""

import os

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from bn_zoo.data import DataNotFoundError, imagenet

SIZE = 16


def _config(**overrides):
    config = dict(source="tfds", image_size=SIZE, shuffle_buffer_size=16, seed=0)
    config.update(overrides)
    return config


def _mock(num_examples=12):
    return tfds.testing.mock_data(
        num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE)


def test_unprepared_imagenet_explains_how_to_prepare(tmp_path):
    config = _config(data_dir=str(tmp_path))
    for call in (lambda: imagenet.validate(config),
                 lambda: imagenet.build_dataset(config, 4, training=True)):
        with pytest.raises(DataNotFoundError, match=(
                rf"no prepared `imagenet2012` in {tmp_path}.*ILSVRC2012_img_train.tar.*"
                r"tfds.builder\('imagenet2012', data_dir='DATA'\).download_and_prepare\("
                r"download_config=tfds.download.DownloadConfig\(manual_dir='MANUAL'\)\)")):
            call()


def test_mock_imagenet_train_and_eval():
    with _mock():
        imagenet.validate(_config(), num_records=None)
        for dtype in ("float32", "bfloat16"):
            images, labels = next(iter(imagenet.build_dataset(
                _config(dtype=dtype), 4, training=True)))
            assert images.shape == (4, SIZE, SIZE, 3) and images.dtype == dtype
            values = tf.cast(images, tf.float32).numpy()
            assert -1.0 <= values.min() and values.max() <= 1.0
        # Evaluation is one pass over the 12 examples; tfds labels are 0..999.
        labels = [y for _, batch in imagenet.build_dataset(_config(), 5, training=False)
                  for y in batch.numpy()]
        assert len(labels) == 12 and all(0 <= y < 1000 for y in labels)


def test_mock_imagenet_under_mirrored_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with _mock():
        dataset = strategy.distribute_datasets_from_function(
            imagenet.dataset_fn(_config(), 8, training=True))
        images, _ = next(iter(dataset))
    assert [x.shape for x in strategy.experimental_local_results(images)] == [
        (4, SIZE, SIZE, 3)] * 2


@pytest.mark.skipif(
    not os.path.isdir(os.path.join(os.environ.get("TFDS_DATA_DIR", "/nonexistent"), "mnist")),
    reason="needs the prepared MNIST of TFDS_DATA_DIR (a data set with a single shard)")
def test_fewer_tfds_files_than_pipelines_shards_by_record():
    # tfds refuses to shard 1 file among 2 pipelines; each pipeline then reads
    # the file and keeps every other record.
    s = imagenet.settings(_config(tfds_name="mnist"))
    split = "test[:20]"
    seen = []
    for index in range(2):
        context = tf.distribute.InputContext(2, index, 2)
        examples = imagenet._tfds_examples(s, split, False, context, None)
        seen.append([where.decode() for _, _, where in examples.as_numpy_iterator()])
    assert len(seen[0]) == len(seen[1]) == 10
    assert not set(seen[0]) & set(seen[1])
