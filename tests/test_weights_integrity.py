"""Weights files are checked before anything is loaded: a checksum file
`<file>.sha256` (sha256sum's format) beside bn_zoo's own weights files, and
no NaN or Inf in any file.

References are independent of the code under test: coreutils' `sha256sum`
(and `sha256sum -c`) for digests, h5py for where a variable's bytes lie in
the file (the bit is flipped there, in the real file), numpy's float32 for
what the flip makes of the value, and Keras' own variables for names and
values before and after a refused load.
"""

import os
import shutil
import subprocess

import h5py
import numpy as np
import pytest

import bn_zoo
import commands
from bn_zoo.models import catalogue, hub, weights_files
from bn_zoo.training import warm_start
from bn_zoo.training.errors import ConfigError

SHIPPED = os.path.join(commands.ROOT, "bn_zoo", "weights", "bn_mlp_mnist.weights.h5")
KERNEL = "layers/dense/vars/0"  # bn_mlp's first Dense kernel (hidden1_dense), 784x100.
GAMMA = "layers/batch_normalization_1/vars/0"  # hidden2_bn's gamma.
BIAS = "layers/dense_3/vars/1"  # The classifier's bias.
EXPONENT_BIT = 30  # The top exponent bit of an IEEE float32.

needs_sha256sum = pytest.mark.skipif(shutil.which("sha256sum") is None,
                                     reason="coreutils' sha256sum is not installed")


def sha256sum(path):
    """The digest coreutils' sha256sum gives."""
    out = subprocess.run(["sha256sum", path], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def set_bits(path, dataset, index, change):
    """Rewrites float32 element `index` (flat) of `dataset` in the file's own
    bytes, located with h5py: `change(uint32) -> uint32`. Returns the old and
    new values as numpy float32."""
    with h5py.File(path, "r") as f:
        data = f[dataset]
        assert data.dtype == np.float32 and data.chunks is None  # Contiguous, uncompressed.
        offset = data.id.get_offset() + 4 * index
    with open(path, "r+b") as f:
        f.seek(offset)
        old = np.frombuffer(f.read(4), "<u4")[0]
        new = np.array([change(int(old))], "<u4")
        f.seek(offset)
        f.write(new.tobytes())
    return np.array([old], "<u4").view("<f4")[0], new.view("<f4")[0]


def flip_exponent_bit(path, dataset, index=0):
    return set_bits(path, dataset, index, lambda bits: bits ^ (1 << EXPONENT_BIT))


def values(model):
    return [np.array(v) for v in model.weights]


def assert_unchanged(model, before):
    for variable, old in zip(model.weights, before):
        np.testing.assert_array_equal(np.array(variable), old, err_msg=variable.path)


@pytest.fixture
def shipped_copy(tmp_path):
    """The shipped BN-MLP weights and their checksum file, copied."""
    path = str(tmp_path / os.path.basename(SHIPPED))
    shutil.copy(SHIPPED, path)
    shutil.copy(SHIPPED + ".sha256", path + ".sha256")
    return path


@needs_sha256sum
def test_bn_zoo_writes_a_checksum_that_sha256sum_accepts(tmp_path):
    model = bn_zoo.create_model("bn_mlp")
    path = str(tmp_path / "out" / "bn_mlp.weights.h5")
    weights_files.save_weights_atomically(model, path)
    assert sorted(os.listdir(tmp_path / "out")) == ["bn_mlp.weights.h5",
                                                    "bn_mlp.weights.h5.sha256"]
    check = subprocess.run(["sha256sum", "-c", "bn_mlp.weights.h5.sha256"], cwd=tmp_path / "out",
                           capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout == "bn_mlp.weights.h5: OK\n", check
    assert weights_files.verify_checksum(path) == sha256sum(path)
    # Rewritten in place: the checksum follows the new file.
    model.weights[0].assign(model.weights[0] + 1.0)
    weights_files.save_weights_atomically(model, path)
    assert open(path + ".sha256").read().split()[0] == sha256sum(path)


@needs_sha256sum
def test_every_shipped_file_has_a_checksum_that_agrees_with_the_catalogue():
    directory = os.path.dirname(SHIPPED)
    registered = {entry.file_name: entry.sha256 for model_name in catalogue.list_models()
                  for entry in catalogue.weights_of(model_name).values()
                  if entry.origin.startswith("file://")}
    shipped = sorted(n for n in os.listdir(directory) if n.endswith(".weights.h5"))
    assert shipped and set(shipped) <= set(registered)
    for name in shipped:
        check = subprocess.run(["sha256sum", "-c", name + ".sha256"], cwd=directory,
                               capture_output=True, text=True)
        assert check.returncode == 0 and check.stdout == f"{name}: OK\n", check
        assert sha256sum(os.path.join(directory, name)) == registered[name]


@needs_sha256sum
def test_a_flipped_exponent_bit_fails_the_checksum_and_changes_nothing(shipped_copy):
    """The finite but huge value is what only the checksum catches."""
    expected = sha256sum(shipped_copy)
    old, new = flip_exponent_bit(shipped_copy, KERNEL)
    assert np.isfinite(new) and abs(new) > 1e30 and abs(old) < 1
    actual = sha256sum(shipped_copy)

    with pytest.raises(weights_files.CorruptWeightsError) as raised:
        bn_zoo.create_model("bn_mlp", weights=shipped_copy)
    message = str(raised.value)
    assert "\n" not in message
    for part in (shipped_copy, expected, actual, "delete", shipped_copy + ".sha256"):
        assert part in message, (part, message)

    model = bn_zoo.create_model("bn_mlp")
    before = values(model)
    with pytest.raises(weights_files.CorruptWeightsError):
        weights_files.load_weights(model, shipped_copy)
    assert_unchanged(model, before)

    # Without its checksum file the same file loads, unverified: the flipped
    # value is in the model.
    os.remove(shipped_copy + ".sha256")
    weights_files.load_weights(model, shipped_copy)
    assert np.array(model.get_layer("hidden1_dense").kernel)[0, 0] == new


def test_nan_and_inf_are_refused_naming_the_file_and_the_variables(tmp_path):
    """Checked with or without a checksum file: here a file of the user's own
    `model.save_weights`, which has none."""
    path = str(tmp_path / "own.weights.h5")
    source = bn_zoo.create_model("bn_mlp", seed=1)
    source.save_weights(path)
    with h5py.File(path, "r") as f:
        assert f[GAMMA][0] == 1.0  # Initial gamma: exponent 127, so the flip gives Inf.
    _, inf = flip_exponent_bit(path, GAMMA)
    _, nan = set_bits(path, BIAS, 3, lambda bits: 0x7FC00000)
    assert np.isinf(inf) and np.isnan(nan)

    model = bn_zoo.create_model("bn_mlp", seed=2)
    before = values(model)
    with pytest.raises(weights_files.CorruptWeightsError) as raised:
        weights_files.load_weights(model, path)
    assert_unchanged(model, before)
    message = str(raised.value)
    gamma = model.get_layer("hidden2_bn").gamma.path
    bias = model.get_layer("predictions").bias.path
    for part in (path, f"{GAMMA} (variable {gamma!r}) has 1 Inf of 100",
                 f"{BIAS} (variable {bias!r}) has 1 NaN of 10"):
        assert part in message, (part, message)
    with pytest.raises(weights_files.CorruptWeightsError, match="Non-finite"):
        bn_zoo.create_model("bn_mlp", weights=path)


def test_fine_tuning_refuses_a_bad_start_and_leaves_the_model(shipped_copy, tmp_path):
    model = bn_zoo.create_model("bn_mlp", classes=5)
    before = values(model)
    expected = open(shipped_copy + ".sha256").read().split()[0]
    flip_exponent_bit(shipped_copy, KERNEL)
    with pytest.raises(ConfigError) as raised:
        warm_start.load(model, "bn_mlp", shipped_copy)
    assert f"config.model.weights={shipped_copy!r}" in str(raised.value)
    assert expected in str(raised.value) and "fails its sha256 check" in str(raised.value)

    # A .keras file (no checksum file) whose gamma is Inf.
    keras_file = str(tmp_path / "model.keras")
    saved = bn_zoo.create_model("bn_mlp")
    gamma = saved.get_layer("hidden2_bn").gamma
    gamma.assign(np.where(np.arange(100) == 7, np.inf, 1.0).astype(np.float32))
    saved.save(keras_file)
    with pytest.raises(ConfigError) as raised:
        warm_start.load(model, "bn_mlp", keras_file)
    assert keras_file in str(raised.value)
    assert f"(variable {gamma.path!r}) has 1 Inf" in str(raised.value)
    assert_unchanged(model, before)


def test_a_cached_conversion_that_fails_its_checksum_is_refused(tmp_path, monkeypatch):
    """A converted release in the Keras cache is checked at every use; the
    fix says that deleting it converts again."""
    monkeypatch.setattr(hub, "CACHE_DIR", str(tmp_path / "keras"))
    target = hub.converted_path("bn_inception", "imagenet", 1000)
    weights_files.save_weights_atomically(bn_zoo.create_model("bn_mlp"), target)
    assert hub.fetch_converted("bn_inception", "imagenet", 1000) == target
    flip_exponent_bit(target, KERNEL)
    with pytest.raises(weights_files.CorruptWeightsError) as raised:
        hub.fetch_converted("bn_inception", "imagenet", 1000)
    assert target in str(raised.value) and "converts the release again" in str(raised.value)


def test_a_command_prints_one_line_and_writes_nothing(shipped_copy, tmp_path):
    flip_exponent_bit(shipped_copy, KERNEL)
    export_dir = tmp_path / "export"
    result = commands.run("trainers.export", ["--model=bn_mlp", f"--weights={shipped_copy}",
                                              f"--export_dir={export_dir}"])
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [commands.error_line(result.stderr)]
    line = commands.error_line(result.stderr)
    assert line.startswith("ERROR (CorruptWeightsError): ") and shipped_copy in line, line
    assert "fails its sha256 check" in line
    assert not export_dir.exists() or not os.listdir(export_dir)


def test_export_refuses_a_keras_file_with_inf(tmp_path):
    from bn_zoo.export import exporter

    path = str(tmp_path / "model.keras")
    model = bn_zoo.create_model("bn_mlp")
    gamma = model.get_layer("hidden1_bn").gamma
    gamma.assign(np.full(100, -np.inf, np.float32))
    model.save(path)
    with pytest.raises(weights_files.CorruptWeightsError) as raised:
        exporter.load_model_file(path)
    assert path in str(raised.value)
    assert f"(variable {gamma.path!r}) has 100 Inf of 100 values" in str(raised.value)
