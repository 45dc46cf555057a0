"""Training the Inception family on ImageNet-format data, in process.

A tiny BN-x5 (depth multiplier 0.1, 32x32 inputs, 8 classes) from
configs/imagenet.py:bn_x5 trains for 30 steps on generated JPEG TFRecords:

- with the default strategy: the loss decreases, and the model restored from
  the last checkpoint scores, counted in numpy, the top-1 and top-5 accuracy
  the trainer logged;
- with `mirrored` over 2 logical CPUs: the loss
  decreases, and the restored model's numpy evaluation again matches the log
  (with a partial last batch that leaves one replica empty);
- in `mixed_bfloat16`: the loss decreases, along another path than in float32;
- from `tfds.testing.mock_data` for `imagenet2012` (TFDS as the source).

The last three train tests/tiny_convnet.py's network through the same
config, pipeline and trainer: their subject is the strategy, the policy and
the data source, and it traces in seconds where the Inception takes a minute.

Plus the recipe of every ImageNet config against the paper's arithmetic, the
config switches (synchronized BN, BN momentum, dropout, LRN) as they arrive
in the built model, and `jit_compile=True` through the same trainer (on the MNIST MLP, whose XLA
compilation takes seconds rather than the minute of an Inception).
"""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import imagenet_training_helpers as helpers
from file_tree import snapshot
from bn_zoo import population, training
from bn_zoo.data import tfrecords
from bn_zoo import runs as workdir_lib

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first


def train(workdir, data_dir, model="bn_x5", **fields):
    final = training.train(helpers.config(model, **helpers.overrides(data_dir, **fields)), workdir)
    return final, workdir_lib.read_csv(os.path.join(workdir, "metrics.csv"))


def assert_restored_model_matches_log(workdir, rows):
    """The last checkpoint, restored, evaluates as the trainer logged."""
    model = training.restore_model(workdir, classifier_activation=None)
    top1, top5, count = helpers.reference_evaluation(model, helpers.pipeline_config(workdir))
    assert rows[-1]["eval_accuracy"] == pytest.approx(top1, abs=1e-6)
    assert rows[-1]["eval_top5_accuracy"] == pytest.approx(top5, abs=1e-6)
    return count


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return helpers.write_data(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(scope="module")
def default_run(data_dir, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("default") / "run")
    final, rows = train(workdir, data_dir)
    return workdir, final, rows


def test_recipes_of_the_imagenet_configs():
    # Section 4.2 and 4.2.1 in numbers: Inception 0.0015 at batch 32, BN-x5
    # 5x and BN-x30 30x that; L2 2e-4, /5 for BN-x; decay every 8 epochs of
    # 1,281,167 images at batch 32, 6x faster for BN-x; distortions halved;
    # within-shard shuffling (a 10,000-record buffer) only for BN-x.
    epoch = 1_281_167 / 32
    expected = {
        "inception": (0.0015, 2e-4, round(8 * epoch), 1.0, 1),
        "bn_baseline": (0.0015, 2e-4, round(8 * epoch), 1.0, 1),
        "bn_x5": (5 * 0.0015, 2e-4 / 5, round(8 * epoch / 6), 0.5, 10_000),
        "bn_x30": (30 * 0.0015, 2e-4 / 5, round(8 * epoch / 6), 0.5, 10_000),
        "bn_x5_sigmoid": (5 * 0.0015, 2e-4 / 5, round(8 * epoch / 6), 0.5, 10_000),
        "bn_inception": (30 * 0.0015, 2e-4 / 5, round(8 * epoch / 6), 0.5, 10_000),
    }
    for model, (rate, decay, decay_steps, strength, buffer) in expected.items():
        c = training.resolve(helpers.config(model))
        assert c.optimizer.name == "sgd_momentum" and c.optimizer.momentum == 0.9, model
        assert c.optimizer.base_learning_rate == pytest.approx(rate), model
        assert c.optimizer.weight_decay == pytest.approx(decay), model
        assert (c.schedule.decay_rate, c.schedule.decay_steps) == (0.96, decay_steps), model
        assert c.data.distortion_strength == strength, model
        assert c.data.shuffle_buffer_size == buffer, model
        assert c.global_batch_size == 32 and c.data.name == "imagenet", model
    # Every knob stays overridable, and the learning rate scales with the batch.
    c = training.resolve(helpers.config("bn_x5", **{
        "global_batch_size": 256, "data.distortion_strength": 0.0,
        "model.kwargs.dropout_rate": 0.2, "optimizer.weight_decay": 1e-4,
        "data.shuffle_buffer_size": 500}))
    assert c.data.distortion_strength == 0.0 and c.optimizer.weight_decay == 1e-4
    assert c.data.shuffle_buffer_size == 500
    assert c.model.kwargs.dropout_rate == 0.2
    assert training.optimizers.learning_rate(c) == pytest.approx(0.0075 * 256 / 32)


def test_default_strategy_trains_and_the_checkpoint_restores(default_run):
    workdir, final, rows = default_run
    assert [r["step"] for r in rows] == list(range(0, helpers.STEPS + 1, helpers.EVERY))
    assert rows[-1]["train_loss"] < rows[1]["train_loss"]
    assert rows[0]["learning_rate"] == pytest.approx(0.04 * 8 / 32)
    assert final["step"] == helpers.STEPS
    assert assert_restored_model_matches_log(workdir, rows) == helpers.NUM_VALIDATION


def test_mirrored_trains_and_the_checkpoint_restores(data_dir, tmp_path):
    assert len(tf.config.list_logical_devices("CPU")) == 2
    workdir = str(tmp_path / "mirrored")
    _, rows = train(workdir, data_dir, model=None, strategy="mirrored")
    assert [r["step"] for r in rows] == list(range(0, helpers.STEPS + 1, helpers.EVERY))
    assert rows[-1]["train_loss"] < rows[1]["train_loss"]
    # 25 validation images in per-replica batches of 4: the last step gives
    # one replica a single image and the other none; each is counted once.
    assert assert_restored_model_matches_log(workdir, rows) == helpers.NUM_VALIDATION


def test_config_switches_reach_the_model(data_dir):
    for synchronized in (False, True):
        c = training.resolve(helpers.config(**helpers.overrides(
            data_dir, synchronized_batch_norm=synchronized)))
        model = training.modeling.create_model(c)
        layers = population.batch_normalization_layers(model)
        # Figure 5: conv1, conv2_reduce, conv2, then 7 convolutions per module
        # with 4 branches and 5 in the strided 3c and 4e.
        assert len(layers) == 3 + 8 * 7 + 2 * 5
        assert all(l.synchronized == synchronized and l.momentum == 0.9 for l in layers)
    # Dropout and LRN from the recipe, or as overridden.
    c = training.resolve(helpers.config("inception", **helpers.overrides(data_dir)))
    model = training.modeling.create_model(c)
    assert model.get_layer("top_dropout").rate == 0.4
    assert {"pool1_lrn", "conv2_lrn"} <= {l.name for l in model.layers}
    c = training.resolve(helpers.config("inception", **helpers.overrides(
        data_dir, **{"model.kwargs.dropout_rate": 0.1, "model.kwargs.lrn": False})))
    model = training.modeling.create_model(c)
    assert model.get_layer("top_dropout").rate == 0.1
    assert not any("lrn" in l.name for l in model.layers)


def test_mixed_bfloat16_trains(data_dir, tmp_path):
    # tests/tiny_convnet.py's network: bfloat16 is emulated on this CPU, and
    # the subject is the policy's way through the trainer (the layer's own
    # bfloat16 arithmetic: tests/test_bn_mixed_precision.py).
    _, float32_rows = train(str(tmp_path / "float32"), data_dir, model=None)
    workdir = str(tmp_path / "bfloat16")
    _, rows = train(workdir, data_dir, model=None, mixed_precision="mixed_bfloat16")
    losses = np.array([r["train_loss"] for r in rows[1:]])
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    # Same data and initial weights as the float32 run; bfloat16 arithmetic
    # takes it elsewhere (so the policy reached the model).
    reference = np.array([r["train_loss"] for r in float32_rows[1:]])
    assert np.max(np.abs(losses - reference) / reference) > 1e-3
    # The weights the optimizer updates (and the BN statistics) stay float32.
    dtypes = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints")
                                      ).get_variable_to_dtype_map()
    weights = [n for n in dtypes if n.startswith(("model/", "optimizer/_trainable_variables"))]
    assert len(weights) > 10 and all(dtypes[n] == tf.float32 for n in weights)


def test_mock_tfds_imagenet2012(tmp_path):
    workdir = str(tmp_path / "mock")
    fields = {"data.source": "tfds", "data.data_dir": None, "data.num_classes": 1000,
              "optimizer.base_learning_rate": 0.4}
    with tfds.testing.mock_data(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE):
        _, rows = train(workdir, None, model=None, **fields)
        assert rows[-1]["train_loss"] < rows[1]["train_loss"]
        assert assert_restored_model_matches_log(workdir, rows) == 16


def test_jit_compile_trains_as_without_xla(tmp_path):
    from configs import mnist as mnist_configs

    curves = []
    for jit in (False, True):
        c = mnist_configs.get_config("bn_mlp")
        c.jit_compile = jit
        c.num_train_steps = 60
        c.steps_per_loop = c.log_every_steps = c.eval_every_steps = 20
        c.checkpoint_every_steps = 60
        c.data.train_split = "train[:1200]"
        c.data.eval_split = "test[:1000]"
        c.probe.num_examples = 100
        c.population_batches = 0
        training.train(c, str(tmp_path / f"jit_{jit}"))
        rows = workdir_lib.read_csv(str(tmp_path / f"jit_{jit}" / "metrics.csv"))
        curves.append([r["train_loss"] for r in rows[1:]])
    assert curves[1][-1] < curves[1][0]
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-3)


def _shard(path, records):
    tfrecords.write_records(path, [r.SerializeToString() for r in records])


def _broken_copies(data_dir, root):
    """Data directories with one defect each in shard 2 of 4 (whose first
    record the preflight check reads)."""
    jpeg = tf.io.encode_jpeg(np.full((40, 40, 3), 128, np.uint8)).numpy()
    defects = {
        "corrupt_tfrecord": lambda path: open(path, "r+b").truncate(100),
        "undecodable_image": lambda path: _shard(path, [tfrecords.make_example(
            jpeg[:len(jpeg) // 2], 1)]),
        "label_out_of_range": lambda path: _shard(path, [tfrecords.make_example(jpeg, 99)]),
    }
    dirs = {}
    for name, damage in defects.items():
        target = os.path.join(root, name)
        shutil.copytree(data_dir, target)
        damage(os.path.join(target, "train-00002-of-00004"))
        dirs[name] = target
    dirs["missing_directory"] = os.path.join(root, "does_not_exist")
    dirs["empty_directory"] = os.path.join(root, "empty")
    os.makedirs(dirs["empty_directory"])
    return dirs


def test_bad_input_fails_clearly_and_changes_nothing(default_run, data_dir, tmp_path):
    """`python -m trainers.train` on bad data or a batch that does not split:
    one clear error each, exit code 1, no traceback, the workdir of an
    unfinished run (here extended to 60 steps) byte-for-byte unchanged. The
    cases run at once, each on its own copy of the workdir (one run per
    workdir: a second one is refused while the first holds its lock)."""
    before = snapshot(default_run[0])
    workdirs = {}
    dirs = _broken_copies(data_dir, str(tmp_path))
    shard = "train-00002-of-00004"
    expected = {
        "missing_directory": f"{dirs['missing_directory']!r} does not exist",
        "empty_directory": f"{dirs['empty_directory']!r} is empty",
        "corrupt_tfrecord": f"{shard}: record 0 is corrupt",
        "undecodable_image": f"{shard}, record 0: the JPEG image does not decode",
        "label_out_of_range": f"{shard}, record 0: stored label 99 minus label_offset 1 is "
                              f"98, outside [0, {helpers.NUM_CLASSES})",
        "batch_does_not_divide": "config.global_batch_size=5 does not divide among the 2 "
                                 "replicas",
    }
    processes = {}
    for case in expected:
        fields = helpers.overrides(dirs.get(case, data_dir), num_train_steps=60)
        extra = []
        if case == "batch_does_not_divide":
            fields["global_batch_size"] = 5
            extra = ["--strategy=mirrored", "--config.num_cpu_devices=2"]
        workdirs[case] = shutil.copytree(default_run[0], tmp_path / "workdirs" / case)
        processes[case] = helpers.launch(helpers.command("bn_x5", workdirs[case], fields,
                                                         *extra))
    fresh = str(tmp_path / "fresh")
    processes["fresh_workdir"] = helpers.launch(helpers.command(
        "bn_x5", fresh, helpers.overrides(dirs["corrupt_tfrecord"])))
    expected["fresh_workdir"] = expected["corrupt_tfrecord"]
    for case, process in processes.items():
        _, err = process.communicate(timeout=300)
        assert process.returncode == 1, (case, err[-3000:])
        errors = [line for line in err.splitlines() if line.startswith("ERROR")]
        assert len(errors) == 1 and expected[case] in errors[0], (case, err[-3000:])
        assert "Traceback" not in err, (case, err[-3000:])
    for case, workdir in workdirs.items():
        assert snapshot(workdir) == before, case
    assert not os.path.exists(fresh)
