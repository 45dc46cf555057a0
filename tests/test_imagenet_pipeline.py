"""ImageNet input pipelines on real JPEG TFRecords in the standard layout."""

import numpy as np
import pytest
import tensorflow as tf

from bn_zoo.data import imagenet, tfrecords

NUM_CLASSES = 4
NUM_TRAIN, NUM_VALIDATION = 48, 20
SIZE = 24


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("imagenet")
    tfrecords.write_synthetic_imagenet(
        str(path), num_train=NUM_TRAIN, num_validation=NUM_VALIDATION,
        num_classes=NUM_CLASSES, image_size=(40, 36), num_train_shards=4,
        num_validation_shards=2, seed=1)
    return str(path)


def _config(data_dir, **overrides):
    config = dict(source="tfrecord", data_dir=data_dir, num_classes=NUM_CLASSES,
                  image_size=SIZE, shuffle_buffer_size=64, cycle_length=4)
    config.update(overrides)
    return config


def _stored_labels(paths):
    """Labels as stored, read with the protobuf API (not the pipeline)."""
    labels = []
    for path in paths:
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            example = tf.train.Example.FromString(record)
            labels.append(example.features.feature[tfrecords.LABEL_KEY].int64_list.value[0])
    return labels


def _eval_examples(dataset):
    """Every (image bytes, label) of an evaluation pass, in order."""
    return [(image.tobytes(), int(label))
            for images, labels in dataset.as_numpy_iterator()
            for image, label in zip(images, labels)]


def test_layout_is_listed_in_shard_order(data_dir):
    files = tfrecords.list_shards(data_dir, "train")
    assert [f.rsplit("/", 1)[1] for f in files] == [
        f"train-0000{i}-of-00004" for i in range(4)]
    assert tfrecords.parse_shard_name(files[2]) == ("train", 2, 4)
    assert tfrecords.parse_shard_name("train-2-of-4") is None
    assert len(tfrecords.list_shards(data_dir, "validation")) == 2


def test_eval_labels_are_stored_labels_minus_offset(data_dir):
    stored = _stored_labels(tfrecords.list_shards(data_dir, "validation"))
    assert set(stored) == {1, 2, 3, 4}  # The standard layout's 1-based labels.
    examples = _eval_examples(imagenet.build_dataset(_config(data_dir), 8, training=False))
    assert sorted(label for _, label in examples) == sorted(s - 1 for s in stored)
    examples = _eval_examples(imagenet.build_dataset(
        _config(data_dir, label_offset=0, num_classes=NUM_CLASSES + 1), 8, training=False))
    assert sorted(label for _, label in examples) == sorted(stored)


def test_eval_is_one_deterministic_pass(data_dir):
    config = _config(data_dir)
    first = _eval_examples(imagenet.build_dataset(config, 8, training=False))
    second = _eval_examples(imagenet.build_dataset(config, 8, training=False))
    assert len(first) == NUM_VALIDATION and first == second
    assert len({image for image, _ in first}) == NUM_VALIDATION


def test_training_batches_shapes_and_dtypes(data_dir):
    for dtype in ("float32", "bfloat16"):
        dataset = imagenet.build_dataset(_config(data_dir, dtype=dtype), 16, training=True)
        # More batches than one epoch holds: training repeats.
        for images, labels in dataset.take(NUM_TRAIN // 16 + 2):
            assert images.shape == (16, SIZE, SIZE, 3) and images.dtype == dtype
            assert labels.shape == (16,) and labels.dtype == tf.int32
            values = tf.cast(images, tf.float32).numpy()
            assert -1.0 <= values.min() and values.max() <= 1.0
            assert set(labels.numpy()) <= set(range(NUM_CLASSES))


def test_training_is_reproducible_with_a_seed(data_dir):
    def batches(seed):
        dataset = imagenet.build_dataset(_config(data_dir, seed=seed), 8, training=True)
        return [(x.numpy(), y.numpy()) for x, y in dataset.take(4)]

    first, again, other = batches(7), batches(7), batches(8)
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not all(np.array_equal(x1, x2) for (x1, _), (x2, _) in zip(first, other))


def test_buffer_of_one_reads_each_shard_in_order(data_dir):
    """Section 4.2.1: without within-shard shuffling (the baseline's reading)
    an epoch is the shards one after another, each in stored order; with a
    shuffle buffer it is not."""
    shards = [[label - 1 for label in _stored_labels([path])]
              for path in tfrecords.list_shards(data_dir, "train")]

    def first_epoch(buffer_size):
        config = _config(data_dir, shuffle_buffer_size=buffer_size, cycle_length=1, seed=3)
        dataset = imagenet.build_dataset(config, 8, training=True)
        return [int(y) for _, labels in dataset.take(NUM_TRAIN // 8) for y in labels]

    def shard_sized_runs(labels):
        size = len(shards[0])
        return sorted(labels[i:i + size] for i in range(0, NUM_TRAIN, size))

    assert shard_sized_runs(first_epoch(1)) == sorted(shards)
    # The buffer mixes records across shards (and epochs).
    assert shard_sized_runs(first_epoch(64)) != sorted(shards)


def test_per_replica_batch_size(data_dir):
    context = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=0, num_replicas_in_sync=4)
    images, labels = next(iter(imagenet.build_dataset(
        _config(data_dir), 16, training=True, input_context=context)))
    assert images.shape[0] == labels.shape[0] == 4
    with pytest.raises(ValueError, match="does not divide among 4 replicas.*multiple of 4"):
        imagenet.build_dataset(_config(data_dir), 10, training=True, input_context=context)
    with pytest.raises(ValueError, match="global_batch_size"):
        imagenet.dataset_fn(_config(data_dir), 0, training=True)


@pytest.mark.parametrize("num_pipelines", [2, 3])
def test_pipelines_read_disjoint_shares_of_everything(data_dir, num_pipelines):
    # 2 validation shards: 2 pipelines shard by file, 3 by record.
    files = tfrecords.list_shards(data_dir, "validation")
    everything = _eval_examples(imagenet.build_dataset(_config(data_dir), 4, training=False))
    seen = []
    for index in range(num_pipelines):
        context = tf.distribute.InputContext(
            num_input_pipelines=num_pipelines, input_pipeline_id=index,
            num_replicas_in_sync=num_pipelines)
        plan = imagenet.plan_shards(files, context)
        assert (plan.num_record_shards == 1) == (num_pipelines <= len(files))
        examples = _eval_examples(imagenet.build_dataset(
            _config(data_dir), 4 * num_pipelines, training=False, input_context=context))
        assert examples
        seen.extend(examples)
    assert sorted(seen) == sorted(everything)


def test_plan_shards_by_file_and_by_record():
    files = [f"train-0000{i}-of-00005" for i in range(5)]
    plans = [imagenet.plan_shards(files, tf.distribute.InputContext(2, i, 2)) for i in range(2)]
    assert plans[0].files == tuple(files[0::2]) and plans[1].files == tuple(files[1::2])
    assert not set(plans[0].files) & set(plans[1].files)
    plan = imagenet.plan_shards(files[:1], tf.distribute.InputContext(3, 2, 3))
    assert (plan.files, plan.num_record_shards, plan.record_shard_index) == (tuple(files[:1]), 3, 2)
    assert "Write at least 3 shards" in plan.reason
    assert imagenet.plan_shards(files).files == tuple(files)


def test_mirrored_strategy_distributes_per_replica_batches(data_dir):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    dataset = strategy.distribute_datasets_from_function(
        imagenet.dataset_fn(_config(data_dir, seed=0), 8, training=True))
    images, labels = next(iter(dataset))
    per_replica = strategy.experimental_local_results(images)
    assert len(per_replica) == 2
    assert all(x.shape == (4, SIZE, SIZE, 3) for x in per_replica)
    assert all(y.shape == (4,) for y in strategy.experimental_local_results(labels))


def test_labels_are_learnable(data_dir):
    # The generator's promise to the trainer tests: a nearest-class-mean
    # classifier on evaluation images beats chance by far.
    images, labels = zip(*[
        (np.frombuffer(image, np.float32).reshape(SIZE, SIZE, 3), label)
        for image, label in _eval_examples(imagenet.build_dataset(
            _config(data_dir), 4, training=False))])
    features = np.stack([np.concatenate([
        x.mean(axis=(0, 1)), [np.abs(np.diff(x, axis=0)).mean(),
                              np.abs(np.diff(x, axis=1)).mean()]]) for x in images])
    labels = np.array(labels)
    means = np.stack([features[labels == c].mean(0) for c in range(NUM_CLASSES)])
    predicted = np.argmin(((features[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (predicted == labels).mean() >= 0.9
