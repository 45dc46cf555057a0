"""Exact resume from every data source: the batches a pipeline built at
`start_step=s` yields are, array for array, batches s, s+1, ... of an
uninterrupted pipeline with the same seed (independent of the trainer; the
trainer passes its checkpoint's step as `start_step`).

Sources: mnist, mnist_inception, image_folder (JPEG/PNG/BMP/GIF files, with
the random crop and flip on), tfds (TFDS' MNIST and a JPEG builder prepared
here), imagenet from TFRecord shards (one pipeline; pipelines sharding by
file; by record) and from TFDS. Each resume point lies past an epoch
boundary, so the resumed pipeline skips whole epochs and part of one. Also:
the per-pipeline slices of a step make up the global batch, an epoch visits
every example once, and another seed gives another order.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

import photo_data
import tiny_convnet
from bn_zoo.data import imagenet, tfrecords
from bn_zoo.data.image_folder import ImageFolderInput
from bn_zoo.data.sources import ModelInput
from bn_zoo.data.tfds_source import TFDSInput
from bn_zoo.training import inputs

SEED = 7
MNIST_READY = os.path.isdir(os.path.join(os.environ.get("TFDS_DATA_DIR", "/nonexistent"),
                                         "mnist"))
needs_mnist = pytest.mark.skipif(not MNIST_READY, reason="needs TFDS_DATA_DIR's prepared MNIST")


def _take(dataset, count):
    return [tuple(np.asarray(t) for t in batch) for batch in dataset.take(count)]


def _assert_same(resumed, full):
    assert len(resumed) == len(full)
    for i, (a, b) in enumerate(zip(resumed, full)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y, err_msg=f"batch {i} after the resume point")


def _context(pipelines, index):
    return tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=index,
                                      num_replicas_in_sync=pipelines)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("photos"))
    photo_data.write_folder(root, per_class=7)  # 3 classes of 7 images.
    return root


@pytest.fixture(scope="module")
def photo_tfds(tmp_path_factory):
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    photo_data.prepare_photo_builder(data_dir, num_train=20, num_test=6)
    return data_dir


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("imagenet"))
    tfrecords.write_synthetic_imagenet(data_dir, num_train=36, num_validation=4, num_classes=4,
                                       image_size=(24, 20), num_train_shards=3,
                                       num_validation_shards=1)
    return data_dir


def _folder_source(folder, **fields):
    data = ImageFolderInput.default_config()
    data.directory = folder
    data.update(fields)
    ImageFolderInput.check_config(data)
    return ImageFolderInput(data, lambda x: x / 127.5 - 1, ModelInput((20, 20, 3)))


def _tfds_source(**fields):
    data = TFDSInput.default_config()
    data.update(fields)
    TFDSInput.check_config(data)
    return TFDSInput(data, None, ModelInput((16, 16, 3), crop_fraction=1.0))


@needs_mnist
@pytest.mark.parametrize("name", ["mnist", "mnist_inception"])
def test_mnist_sources(name):
    data = inputs.default_config(name)
    data.train_split = "train[:200]"  # 12 steps per epoch at batch 16.
    source = inputs.create(data)
    full = _take(source.train_dataset_fn(16, SEED, 0)(None), 17)
    _assert_same(_take(source.train_dataset_fn(16, SEED, 13)(None), 4), full[13:])


@pytest.mark.parametrize("augment", [False, True])
def test_image_folder(folder, augment):
    source = _folder_source(folder, validation_split=0.3, random_crop=augment,
                            random_flip=augment)
    assert source.num_train_examples == 15  # 3 steps per epoch at batch 4.
    full = _take(source.train_dataset(4, SEED), 11)
    _assert_same(_take(source.train_dataset(4, SEED, start_step=7), 4), full[7:])
    # Two pipelines of one replica each: their slices make up the global batch,
    # from a fresh start and from the resume point alike.
    for start in (0, 7):
        parts = [_take(source.train_dataset(4, SEED, start, _context(2, i)), 11 - start)
                 for i in range(2)]
        joined = [tuple(np.concatenate(pair) for pair in zip(a, b)) for a, b in zip(*parts)]
        _assert_same(joined, full[start:])
    other = _take(source.train_dataset(4, SEED + 1), 4)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(other, full))


def test_image_folder_epoch_visits_every_file_once(folder):
    source = _folder_source(folder, validation_split=0.15)  # 18 train images.
    assert source.num_train_examples == 18
    epoch = _take(source.train_dataset(6, SEED), 3)
    images = np.concatenate([x for x, _ in epoch])
    labels = np.concatenate([y for _, y in epoch])
    distinct = {x.tobytes() for x in images}
    assert len(distinct) == 18  # No file twice (the crops all differ).
    np.testing.assert_array_equal(np.bincount(labels), np.bincount(source.train_files[1]))
    next_epoch = _take(source.train_dataset(6, SEED, start_step=3), 3)
    assert {x.tobytes() for b in next_epoch for x in b[0]} == distinct
    assert not np.array_equal(np.concatenate([y for _, y in next_epoch]), labels)


@needs_mnist
def test_tfds_mnist():
    source = _tfds_source(dataset="mnist", train_split="train[:100]", eval_split="test[:8]",
                          shuffle_window=24)
    assert source.class_names == [str(d) for d in range(10)]
    full = _take(source.train_dataset(16, SEED), 9)  # 6 steps per epoch.
    _assert_same(_take(source.train_dataset(16, SEED, start_step=7), 2), full[7:])
    parts = [_take(source.train_dataset(16, SEED, 7, _context(2, i)), 2) for i in range(2)]
    joined = [tuple(np.concatenate(pair) for pair in zip(a, b)) for a, b in zip(*parts)]
    _assert_same(joined, full[7:])


def test_tfds_jpeg_builder_with_augmentation(photo_tfds):
    source = _tfds_source(dataset="photo_classes", data_dir=photo_tfds, shuffle_window=7,
                          random_crop=True, random_flip=True)
    assert source.class_names == list(photo_data.PHOTOS)
    full = _take(source.train_dataset(4, SEED), 9)  # 5 steps per epoch.
    _assert_same(_take(source.train_dataset(4, SEED, start_step=6), 3), full[6:])
    epoch = np.concatenate([y for _, y in full[:5]])
    np.testing.assert_array_equal(np.bincount(epoch, minlength=4), [5, 5, 5, 5])


@pytest.mark.parametrize("pipelines", [1, 4])  # 3 shards: 4 pipelines shard by record.
def test_imagenet_tfrecord(shards, pipelines):
    config = dict(source="tfrecord", data_dir=shards, num_classes=4, image_size=16,
                  shuffle_buffer_size=5, cycle_length=2, seed=SEED)
    batch = 4 * pipelines
    for index in sorted({0, pipelines - 1}):
        context = _context(pipelines, index) if pipelines > 1 else None
        full = _take(imagenet.build_dataset(config, batch, True, input_context=context), 14)
        resumed = _take(imagenet.build_dataset(config, batch, True, input_context=context,
                                               start_step=10), 4)
        _assert_same(resumed, full[10:])
    if pipelines == 1:  # 9 steps per epoch: every record once in the first 9.
        labels = np.concatenate([y for _, y in full[:9]])
        np.testing.assert_array_equal(np.bincount(labels), [9, 9, 9, 9])


def test_imagenet_tfds(photo_tfds):
    config = dict(source="tfds", tfds_name="photo_classes", data_dir=photo_tfds, num_classes=4,
                  image_size=16, shuffle_buffer_size=6, eval_split="test", seed=SEED)
    full = _take(imagenet.build_dataset(config, 4, True), 8)  # 5 steps per epoch.
    _assert_same(_take(imagenet.build_dataset(config, 4, True, start_step=6), 2), full[6:])


# ------------------------------------------------------------ through the trainer
def _trainer_config(data, steps, classes):
    config = tiny_convnet.sgd_config(data, learning_rate=0.05, decay_rate=0.5, decay_steps=3,
                                     input_shape=(16, 16, 3), classes=classes)
    config.global_batch_size = 4
    config.eval_batch_size = 4
    config.num_train_steps = steps
    config.steps_per_loop = config.log_every_steps = config.eval_every_steps = 1
    config.checkpoint_every_steps = 3
    config.population_batches = 0
    return config


@pytest.mark.parametrize("name", ["imagenet"])  # "image_folder" passes too (18 s more).
def test_trainer_resumes_exactly(name, shards, folder, tmp_path):
    """A run stopped at step 3 and continued to 7 ends with the losses and
    weights of a run that trained 7 steps at once (the data after step 3,
    past an epoch boundary, included). With the ImageNet stream reseeded
    on resume, as it was, step 4's loss differs."""
    from bn_zoo import runs, training

    data = inputs.default_config(name)
    if name == "imagenet":
        data.update({"source": "tfrecord", "data_dir": shards, "num_classes": 4,
                     "image_size": 16, "distortion_strength": 0.5, "shuffle_buffer_size": 5,
                     "cycle_length": 2})
    else:
        data.update({"directory": folder, "random_crop": True, "random_flip": True})

    def run(workdir, *step_counts):
        for steps in step_counts:
            config = _trainer_config(data.copy_and_resolve_references(), steps,
                                     4 if name == "imagenet" else 3)
            training.train(config, workdir)
        rows = runs.read_metrics(workdir)
        model = runs.restore_model(workdir)
        return {r["step"]: r["train_loss"] for r in rows}, model.get_weights()

    losses, weights = run(str(tmp_path / "whole"), 7)
    resumed_losses, resumed_weights = run(str(tmp_path / "resumed"), 3, 7)
    assert sorted(losses) == sorted(resumed_losses) == list(range(8))
    for step in range(1, 8):
        assert resumed_losses[step] == pytest.approx(losses[step], rel=1e-5, abs=1e-6), step
    for a, b in zip(resumed_weights, weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
