"""The export command: versions, atomic writes, clear errors that write nothing,
and `--workdir` on a real (short) training run, served by the SavedModel."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import commands
from bn_zoo import export, training
from bn_zoo.data import mnist
from bn_zoo.export import exporter, signatures
from bn_zoo.layers import BatchNormalization
from configs import mnist as mnist_configs

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first


def _tiny_model():
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(3, 3, use_bias=False)(inputs)
    x = BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _listing(directory):
    return sorted(
        os.path.relpath(os.path.join(root, name), directory)
        for root, dirs, files in os.walk(directory)
        for name in dirs + files
    )


@pytest.fixture(scope="module")
def tiny():
    return _tiny_model()


def test_versions_count_up_and_land_in_serving_layout(tiny, tmp_path):
    base = str(tmp_path / "model")
    first = export.export_model(tiny, base, "mnist", image_shape=None, with_image_bytes=False)
    assert first == os.path.join(base, "1")
    assert os.path.isfile(os.path.join(first, "saved_model.pb"))
    assert os.path.isdir(os.path.join(first, "variables"))
    assert export.export_model(tiny, base, "mnist", version=7).endswith(os.sep + "7")
    assert export.export_model(tiny, base, "mnist").endswith(os.sep + "8")
    assert sorted(os.listdir(base)) == ["1", "7", "8"]  # No temporary left over.


def test_existing_version_is_refused_before_any_work(tiny, tmp_path, monkeypatch):
    base = str(tmp_path / "model")
    export.export_model(tiny, base, "mnist", version=3)
    before = _listing(base)
    monkeypatch.setattr(exporter.folding, "fold_batch_normalization",
                        lambda m: pytest.fail("work started before the version check"))
    with pytest.raises(FileExistsError, match="Version 3 already exists.*next one \\(4\\)"):
        export.export_model(tiny, base, "mnist", version=3)
    assert _listing(base) == before


def test_bad_version_and_export_dir(tiny, tmp_path):
    with pytest.raises(ValueError, match="positive integer"):
        export.export_model(tiny, str(tmp_path / "m"), "mnist", version=0)
    file_path = tmp_path / "a_file"
    file_path.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        export.export_model(tiny, str(file_path), "mnist")
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_failed_write_leaves_nothing(tiny, tmp_path, monkeypatch):
    """A write that dies half-way leaves neither the version nor the
    temporary directory (which is inside EXPORT_DIR), nor a new EXPORT_DIR."""
    seen = []

    def broken_save(self, path):
        seen.append(path)
        os.makedirs(os.path.join(path, "variables"))
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(signatures.ServingModule, "save", broken_save)
    base = tmp_path / "model"
    with pytest.raises(OSError, match="disk full"):
        export.export_model(tiny, str(base), "mnist")
    assert os.path.dirname(seen[0]) == str(base)
    assert os.path.basename(seen[0]).startswith(".tmp-1-")
    assert not base.exists()


def test_next_export_removes_temporaries_of_killed_exports_only(tiny, tmp_path):
    host = socket.gethostname()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead = int(finished.stdout)  # A process that has exited.
    base = tmp_path / "model"
    left = {
        f".tmp-4-{host}-{dead}": False,  # Killed on this host: removed.
        f".tmp-5-{host}-{os.getpid()}": True,  # Still running: kept.
        f".tmp-6-other-host-{dead}": True,  # Another host's: kept.
    }
    for name in left:
        (base / name).mkdir(parents=True)
        (base / name / "saved_model.pb").write_bytes(b"half")
    export.export_model(tiny, str(base), "mnist", version=1)
    assert sorted(os.listdir(base)) == sorted(["1"] + [n for n, kept in left.items() if kept])


def test_weights_too_large_for_constants_are_refused(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(signatures, "MAX_CONSTANT_BYTES", 64)  # The conv kernel: 108.
    with pytest.raises(ValueError, match="GiB of weights.*constant_weights=False"):
        export.export_model(tiny, str(tmp_path / "m"), "mnist")
    assert not (tmp_path / "m").exists()
    path = export.export_model(tiny, str(tmp_path / "m"), "mnist", constant_weights=False)
    assert tf.saved_model.load(path).signatures["serving_default"] is not None


def test_unknown_model_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="Unknown model 'resnet'.*bn_inception"):
        export.export_registered_model("resnet", str(tmp_path / "m"))
    assert not (tmp_path / "m").exists()


def test_workdir_without_config_or_checkpoint_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export.export_workdir(str(tmp_path / "missing"), str(tmp_path / "m"))
    workdir = tmp_path / "run"
    workdir.mkdir()
    with pytest.raises(FileNotFoundError, match="not a training workdir"):
        export.export_workdir(str(workdir), str(tmp_path / "m"))
    (workdir / "config.json").write_text(json.dumps({"model": {"name": "bn_mlp"}}))
    (workdir / "checkpoints").mkdir()
    with pytest.raises(ValueError, match="no checkpoint"):
        export.export_workdir(str(workdir), str(tmp_path / "m"))
    assert not (tmp_path / "m").exists()


def test_cli_errors_exit_nonzero_and_write_nothing(tmp_path):
    base = tmp_path / "m"
    (base / "2").mkdir(parents=True)
    result = commands.run("trainers.export", ["--model=bn_mlp", f"--export_dir={base}",
                                              "--version=2"], timeout=300, tf_log_level="2")
    assert result.returncode == 1
    assert "Version 2 already exists" in result.stderr
    assert _listing(base) == ["2"]
    result = commands.run("trainers.export", [f"--export_dir={base}"], timeout=300,
                          tf_log_level="2")
    assert result.returncode != 0
    assert "exactly one of --workdir" in result.stderr


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
    """A real 40-step BN-MLP run that ends with population statistics."""
    workdir = str(tmp_path_factory.mktemp("bn_mlp_run"))
    config = mnist_configs.get_config("bn_mlp")
    config.num_train_steps = 40
    config.steps_per_loop = config.log_every_steps = 20
    config.eval_every_steps = config.checkpoint_every_steps = 40
    config.data.train_split = "train[:2400]"
    config.probe.layer = ""
    config.population_batches = 5
    training.train(config, workdir)
    return workdir


def test_cli_exports_a_trained_workdir(trained_workdir, tmp_path):
    base = tmp_path / "serving"
    result = commands.run("trainers.export", [f"--workdir={trained_workdir}",
                                              f"--export_dir={base}", "--top_k=2"],
                          timeout=300, tf_log_level="2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str(base / "1")
    assert sorted(os.listdir(base)) == ["1"]

    model = training.restore_model(trained_workdir)  # softmax, population statistics
    assert {l.inference_statistics for l in model.layers if isinstance(l, BatchNormalization)} == {
        "population"
    }
    images, _ = mnist.load("test", os.environ.get("TFDS_DATA_DIR"))
    images = images[:100]
    served = tf.saved_model.load(str(base / "1")).signatures["serving_uint8"](
        images=tf.constant(images.reshape(-1, 28, 28, 1).astype("uint8"))
    )
    x = images.reshape(-1, 28, 28, 1).astype("float32") / 255.0
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, rtol=0, atol=1e-5)
    assert served["classes"].shape == (100, 2)


def test_workdir_exports_carry_the_recorded_class_names(trained_workdir, tmp_path):
    """A run's labels.txt names its classes in every export; a run without
    one, trained on MNIST, gets the model's label set (the digits); a
    labels.txt whose count differs from the outputs is refused, nothing
    written."""
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(trained_workdir, workdir)
    plain = export.export_workdir(str(workdir), str(tmp_path / "plain"), format="onnx")
    assert export.read_class_names(plain) == tuple("0123456789")

    names = [f"digit {w}" for w in ("zero", "one", "two", "three", "four", "five", "six",
                                    "seven", "eight", "nine")]
    (workdir / "labels.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    path = export.export_workdir(str(workdir), str(tmp_path / "named"), top_k=3)
    images, _ = mnist.load("test", os.environ.get("TFDS_DATA_DIR"))
    images = images[:50].reshape(-1, 28, 28, 1)
    served = tf.saved_model.load(path).signatures["serving_uint8"](
        images=tf.constant(images.astype("uint8")))
    expected = np.asarray(training.restore_model(str(workdir))(
        images.astype("float32") / 255.0, training=False))
    served_names = served["class_names"].numpy().astype(str)
    np.testing.assert_array_equal(served_names[:, 0], np.asarray(names)[expected.argmax(1)])
    onnx_path = export.export_workdir(str(workdir), str(tmp_path / "named"), format="onnx")
    assert export.read_class_names(onnx_path) == tuple(names)

    (workdir / "labels.txt").write_text("cat\ndog\n", encoding="utf-8")
    with pytest.raises(ValueError, match="2 class names for model .* 10 outputs"):
        export.export_workdir(str(workdir), str(tmp_path / "wrong"))
    assert not (tmp_path / "wrong").exists()


def test_cli_exports_a_trained_workdir_as_int8_litert(trained_workdir, tmp_path):
    """--format=litert --quantize=int8 on a workdir: calibrated on the run's
    own training data (config.data), written atomically as model.tflite,
    and it classifies as the restored model does."""
    from ai_edge_litert.interpreter import Interpreter

    base = tmp_path / "litert"
    result = commands.run("trainers.export", [
        f"--workdir={trained_workdir}", f"--export_dir={base}", "--format=litert",
        "--quantize=int8", "--calibration_steps=5"], timeout=300, tf_log_level="2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str(base / "1")
    assert _listing(base) == ["1", os.path.join("1", "labels.txt"),
                              os.path.join("1", "model.tflite")]
    assert "int8 litert" in result.stderr

    interpreter = Interpreter(model_path=str(base / "1" / "model.tflite"))
    assert any(d["dtype"] == np.int8 for d in interpreter.get_tensor_details())
    images, _ = mnist.load("test", os.environ.get("TFDS_DATA_DIR"))
    images = images[:200].astype("float32")
    out = interpreter.get_signature_runner("serving_default")(images=images)
    expected = np.asarray(training.restore_model(trained_workdir)(images / 255.0, training=False))
    agreement = np.mean(out["classes"][:, 0] == expected.argmax(1))
    assert agreement >= 0.9, agreement
    np.testing.assert_allclose(out["probabilities"].sum(1), 1.0, atol=0.05)


def test_missing_runtime_package_writes_nothing(tmp_path, monkeypatch):
    """A missing runtime package (its import blocked): the ImportError that
    the command's main prints as its one ERROR line, exit code 1 (the path
    test_cli_errors_exit_nonzero_and_write_nothing runs as a real command),
    names it and the extra; nothing is written. Called as main calls it."""
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # `import` now fails.
    base = tmp_path / "m"
    with pytest.raises(ImportError) as raised:
        export.export_registered_model(
            "bn_mlp", str(base), weights=None, data_dir=None, data_source="tfds",
            version=None, fold_batch_norm=True, top_k=5, format="litert", quantize=None,
            calibration_steps=100, constant_weights=True)
    assert "needs ai-edge-litert, which is not installed" in str(raised.value)
    assert "pip install 'bn_zoo[export]'" in str(raised.value)
    assert not base.exists()
