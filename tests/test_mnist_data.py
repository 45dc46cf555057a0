"""The MNIST pipeline of the trainer (`bn_zoo.data.mnist`): the order of
examples is a function of (seed, step) only, every epoch visits each example
once, and replicas or workers split each global batch between them."""

import os

import numpy as np
import pytest
import tensorflow as tf

from bn_zoo.data import DataNotFoundError, mnist

SPLIT = "train[:600]"  # 10 global batches of 60 per epoch.
BATCH = 60


@pytest.fixture(scope="module")
def source():
    return mnist.MNIST(data_dir=os.environ.get("TFDS_DATA_DIR"), train_split=SPLIT)


def batches(dataset, n):
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(n)]


def rows(images):
    return sorted(bytes(r) for r in images.reshape(len(images), -1))


def test_a_resumed_dataset_continues_the_same_sequence(source):
    full = batches(source.train_dataset(BATCH, seed=3), 25)
    resumed = batches(source.train_dataset(BATCH, seed=3, start_step=13), 12)
    for (x, y), (x2, y2) in zip(full[13:], resumed):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)


def test_every_epoch_is_a_permutation_of_the_split(source):
    images, labels = mnist.load(SPLIT, os.environ.get("TFDS_DATA_DIR"))
    full = batches(source.train_dataset(BATCH, seed=3), 20)
    for epoch in (full[:10], full[10:]):
        x = np.concatenate([b[0] for b in epoch])
        assert rows(x) == rows(images)
        assert np.bincount(np.concatenate([b[1] for b in epoch]), minlength=10).tolist() == \
            np.bincount(labels, minlength=10).tolist()
    assert not np.array_equal(full[0][0], full[10][0])  # A new order each epoch.
    other_seed = batches(source.train_dataset(BATCH, seed=4), 1)
    assert not np.array_equal(full[0][0], other_seed[0][0])


@pytest.mark.parametrize("pipelines, replicas", [(1, 2), (2, 2), (2, 4)])
def test_replicas_and_workers_split_each_global_batch(source, pipelines, replicas):
    full = batches(source.train_dataset(BATCH, seed=3), 3)
    per_pipeline = []
    for pipeline in range(pipelines):
        context = tf.distribute.InputContext(pipelines, pipeline, replicas)
        per_pipeline.append(batches(source.train_dataset(BATCH, 3, 0, context), 3 * replicas // pipelines))
    local = replicas // pipelines
    for step in range(3):
        parts = [per_pipeline[p][step * local + r] for p in range(pipelines) for r in range(local)]
        assert all(len(y) == BATCH // replicas for _, y in parts)
        np.testing.assert_array_equal(np.concatenate([x for x, _ in parts]), full[step][0])
        np.testing.assert_array_equal(np.concatenate([y for _, y in parts]), full[step][1])


def test_a_batch_that_does_not_divide_among_replicas_is_refused(source):
    with pytest.raises(ValueError, match="multiple of 4"):
        source.train_dataset(BATCH + 2, 3, 0, tf.distribute.InputContext(1, 0, 4))


def test_evaluation_covers_each_example_once_with_padding(source):
    images, labels = mnist.load("test", os.environ.get("TFDS_DATA_DIR"))
    seen_x, seen_y = [], []
    for x, y, w in source.eval_dataset(3000):  # 10,000 = 3 x 3000 + 1000, padded.
        keep = w.numpy() == 1.0
        assert set(np.unique(w.numpy())) <= {0.0, 1.0}
        seen_x.append(x.numpy()[keep])
        seen_y.append(y.numpy()[keep])
    np.testing.assert_array_equal(np.concatenate(seen_x), images)
    np.testing.assert_array_equal(np.concatenate(seen_y), labels)


def test_missing_data_says_where_it_looked_and_what_to_do(tmp_path):
    with pytest.raises(DataNotFoundError, match=f"{tmp_path}.*TFDS_DATA_DIR=../shared"):
        mnist.load("test", str(tmp_path))
    assert os.listdir(tmp_path) == []
