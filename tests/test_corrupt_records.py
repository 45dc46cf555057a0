"""A damaged record file, in any data source, at the start or in the middle
of a run: one line `ERROR (DataError): <file>: record N is corrupt (...).
<fix>`, exit code 1, nothing left behind.

Files are damaged the ways a copy goes wrong: replaced by random bytes
(record 0 fails), cut short in the middle of a record, or a record
overwritten in place. The expected record index N is counted independently
of bn_zoo's scan: from the intact file's record lengths, each record framed
by 16 bytes (TFRecord: length, its CRC, the data's CRC).

The commands (`trainers.train` on MNIST and on ImageNet shards,
`trainers.evaluate`) start together in one module fixture and are checked
one per test.
"""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import commands
from bn_zoo.data import DataError, errors, imagenet, record_files, tfrecords

# Four commands at once (~35 s of CPU) and two TFDS pipelines: about a minute.
pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

TESTS = os.path.dirname(os.path.abspath(__file__))
SHARED_MNIST = os.path.join(os.environ.get("TFDS_DATA_DIR", "/nonexistent"), "mnist")
MNIST_READY = os.path.isdir(SHARED_MNIST)
TFDS_FIX = "prepare 'mnist' again on a machine with internet access (`tfds build mnist"
TFRECORD_FIX = "copy or convert it again"
# tests/test_trainer_failures.py's TINY MNIST run.
TINY_MNIST = ["--config.data.train_split=train[:600]", "--config.data.eval_split=test[:300]",
              "--config.eval_batch_size=300", "--config.probe.num_examples=50",
              "--config.population_batches=0", "--config.num_train_steps=20"]
# tests/tiny_convnet.py on 32x32 shards, 4 images a step.
TINY_IMAGENET = ["--config.data.source=tfrecord", "--config.data.num_classes=4",
                 "--config.data.image_size=32", "--config.model.kwargs.input_shape=(32,32,3)",
                 "--config.data.shuffle_buffer_size=4", "--config.data.cycle_length=4",
                 "--config.global_batch_size=4", "--config.eval_batch_size=4",
                 "--config.num_train_steps=40", "--config.steps_per_loop=5",
                 "--config.log_every_steps=5", "--config.eval_every_steps=40",
                 "--config.checkpoint_every_steps=40", "--config.population_batches=0",
                 "--config.optimizer.base_learning_rate=0.01"]
EVAL_KWARGS = '{"input_shape": [32, 32, 3], "depth_multiplier": 0.1, "classes": 5, "seed": 1}'


def _record_ends(path, count):
    """The byte offsets where the first `count` records of an intact TFRecord
    file end."""
    lengths = tf.data.TFRecordDataset(path).take(count).map(tf.strings.length).batch(count)
    return np.cumsum(next(iter(lengths)).numpy().astype(np.int64) + 16)


def _cut_in_record(path, index):
    """Truncates `path` in the middle of record `index`; returns `index`."""
    ends = _record_ends(path, index + 1)
    start = ends[index - 1] if index else 0
    os.truncate(path, int(start + (ends[index] - start) // 2))
    return index


def _overwrite_record(path, index):
    """Overwrites 8 bytes of record `index`'s data (its CRC no longer holds)."""
    ends = _record_ends(path, index + 1)
    start = ends[index - 1] if index else 0
    with open(path, "r+b") as f:
        f.seek(int(start) + 12 + 3)
        f.write(b"\xa5" * 8)
    return index


def _random_bytes(path):
    size = os.path.getsize(path)
    with open(path, "wb") as f:
        f.write(np.random.default_rng(0).bytes(size))
    return 0


def _mnist_copy(root):
    """A writable copy of the prepared MNIST (never the shared one) and its
    `{split: record file}`."""
    target = os.path.join(root, "mnist")
    shutil.copytree(SHARED_MNIST, target)
    for folder, _, names in os.walk(root):
        os.chmod(folder, 0o755)
        for name in names:
            os.chmod(os.path.join(folder, name), 0o644)
    version = os.path.join(target, sorted(os.listdir(target))[0])
    return {split: os.path.join(version, f"mnist-{split}.tfrecord-00000-of-00001")
            for split in ("train", "test")}


def _shards(root, **kwargs):
    options = dict(num_train=32, num_validation=12, num_classes=4, image_size=(24, 24),
                   num_train_shards=4, num_validation_shards=2)
    options.update(kwargs)
    return tfrecords.write_synthetic_imagenet(str(root), **options)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The damaged data of each command case, and its process (all started
    at once): `{case: (process, damaged file, record index, workdir or output)}`."""
    import bn_zoo

    root = tmp_path_factory.mktemp("corrupt_runs")
    cases = {}
    if MNIST_READY:
        files = _mnist_copy(str(root / "random"))
        cases["mnist_random_train"] = (files["train"], _random_bytes(files["train"]),
                                       str(root / "random"))
        files = _mnist_copy(str(root / "cut"))
        cases["mnist_cut_test"] = (files["test"], _cut_in_record(files["test"], 120),
                                   str(root / "cut"))
    shards = _shards(root / "shards")
    later = shards["train"][2]  # The preflight check reads only its first record.
    cases["imagenet_mid_run"] = (later, _cut_in_record(later, 5), str(root / "shards"))
    evaluation = _shards(root / "evaluation", num_train=0, num_validation=16,
                         num_validation_shards=2)
    later = evaluation["validation"][1]  # trainers.evaluate checks the first shard only.
    cases["evaluate_mid_run"] = (later, _overwrite_record(later, 6), str(root / "evaluation"))
    weights = str(root / "bn_inception.weights.h5")
    bn_zoo.create_model("bn_inception", input_shape=(32, 32, 3), depth_multiplier=0.1,
                        classes=5, seed=1).save_weights(weights)

    started = {}
    for case, (path, index, data_dir) in cases.items():
        out = str(root / f"{case}_out")
        if case.startswith("mnist"):
            process = commands.launch("trainers.train", [
                f"--config={commands.config_path('mnist', 'bn_mlp')}", f"--workdir={out}",
                f"--config.data.data_dir={data_dir}", *TINY_MNIST])
        elif case == "imagenet_mid_run":
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, commands.ROOT]))
            process = commands.launch("trainers.train", [
                f"--config={os.path.join(TESTS, 'tiny_convnet.py')}", f"--workdir={out}",
                f"--config.data.data_dir={data_dir}", *TINY_IMAGENET], env=env)
        else:
            process = commands.launch("trainers.evaluate", [
                "--model=bn_inception", f"--weights={weights}", f"--model_kwargs={EVAL_KWARGS}",
                "--source=tfrecord", f"--data_dir={data_dir}", "--num_classes=4",
                "--batch_size=4", f"--output={out}"])
        started[case] = (process, path, index, out)
    yield started
    for process, *_ in started.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def _check(runs, case, fix):
    process, path, index, out = runs[case]
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("ERROR")]
    assert len(lines) == 1, stderr[-3000:]
    assert lines[0].startswith(f"ERROR (DataError): {path}: record {index} is corrupt ("), lines
    assert fix in lines[0], lines
    assert not os.path.exists(out)  # No workdir, no results file.
    return stdout, stderr


@pytest.mark.skipif(not MNIST_READY, reason="needs TFDS_DATA_DIR's prepared MNIST")
def test_mnist_train_file_of_random_bytes(runs):
    _, stderr = _check(runs, "mnist_random_train", TFDS_FIX)
    assert "corrupted record at byte 0" in commands.error_line(stderr)


@pytest.mark.skipif(not MNIST_READY, reason="needs TFDS_DATA_DIR's prepared MNIST")
def test_mnist_test_file_cut_in_a_record(runs):
    _, stderr = _check(runs, "mnist_cut_test", TFDS_FIX)
    assert "(truncated record at byte " in commands.error_line(stderr)


def test_imagenet_shard_cut_short_stops_the_run_where_it_is_met(runs):
    stdout, stderr = _check(runs, "imagenet_mid_run", TFRECORD_FIX)
    assert "step 5/40" in stdout + stderr  # Training had started: the failure is mid-run.


def test_evaluate_names_the_shard_it_stops_on(runs):
    stdout, stderr = _check(runs, "evaluate_mid_run", TFRECORD_FIX)
    assert "4 images:" in stdout + stderr  # The first batch was evaluated.
    assert "top-1" not in stdout  # No results table.


def test_find_corrupt_counts_like_the_intact_file(tmp_path):
    files = _shards(tmp_path, num_train=24, num_validation=0, num_train_shards=3)["train"]
    assert record_files.find_corrupt(files) is None
    for path, damage, index in ((files[1], _cut_in_record, 3),
                                (files[1], _overwrite_record, 5),
                                (files[1], lambda p, _: _random_bytes(p), None)):
        shutil.copy(files[0], files[1])  # An intact file of 8 records again.
        expected = damage(path, index)
        found = record_files.find_corrupt(files, "Fix it.")
        assert isinstance(found, DataError)
        assert str(found).startswith(f"{path}: record {expected} is corrupt ("), found
        assert str(found).endswith(". Fix it.")


def test_imagenet_resume_counts_records_and_names_the_shard(tmp_path):
    files = _shards(tmp_path)["train"]
    index = _cut_in_record(files[3], 4)
    config = dict(source="tfrecord", data_dir=str(tmp_path), num_classes=4, image_size=16,
                  shuffle_buffer_size=4, seed=0)
    imagenet.validate(config)  # The first record of the first shard reads.
    with pytest.raises(DataError, match=rf"^{files[3]}: record {index} is corrupt \(truncated"):
        imagenet.build_dataset(config, 4, training=True, start_step=3)  # Counts the records.


@pytest.mark.skipif(not MNIST_READY, reason="needs TFDS_DATA_DIR's prepared MNIST")
def test_tfds_source_streaming(tmp_path):
    from bn_zoo.data.sources import ModelInput
    from bn_zoo.data.tfds_source import TFDSInput

    files = _mnist_copy(str(tmp_path))
    data = TFDSInput.default_config()
    data.update(dataset="mnist", data_dir=str(tmp_path), train_split="train[:400]",
                eval_split="test[:20]", shuffle_window=1)
    index = _cut_in_record(files["train"], 150)
    source = TFDSInput(data, None, ModelInput((14, 14, 3), crop_fraction=1.0))
    batches = source.train_dataset(50, seed=0).take(20)  # Record 0 read: a start.
    with pytest.raises(tf.errors.DataLossError):  # TensorFlow's own: no file named.
        for _ in batches:
            pass
    with pytest.raises(DataError, match=rf"^{files['train']}: record {index} is corrupt "
                                        rf"\(truncated record at byte \d+\)\..*{TFDS_FIX[:20]}"):
        with errors.named_data_errors(source):
            for _ in batches:
                pass
    # Damaged at record 0: the source refuses at once, naming the file it
    # failed on (the damaged train file is read too, but its damage is elsewhere).
    _random_bytes(files["test"])
    with pytest.raises(DataError, match=rf"^{files['test']}: record 0 is corrupt"):
        TFDSInput(data, None, ModelInput((14, 14, 3), crop_fraction=1.0))


def test_other_errors_pass_unchanged(tmp_path):
    """A `DataLossError` whose files all read (a damaged checkpoint, another
    reader) is not blamed on the data."""
    files = record_files.RecordFiles(tuple(_shards(tmp_path, num_validation=0)["train"]))
    for message in ("corrupted record at 12", "Checksum does not match: stored 1 vs. 2"):
        with pytest.raises(tf.errors.DataLossError, match=message):
            with errors.named_data_errors(files):
                raise tf.errors.DataLossError(None, None, message)
