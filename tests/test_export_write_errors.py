"""Export into a directory it cannot write: a read-only file system, one
without write permission, a full disk. Real file systems: a small tmpfs
mounted for the test (remounted read-only, or filled up), which needs root;
without root the read-only case uses a directory without write permission
and the full-disk cases are skipped. Every format, the Python API and the
command's one-line error; nothing is left behind."""

import errno
import os
import subprocess

import keras
import pytest

import commands
from bn_zoo import export
from bn_zoo.export import exporter
from bn_zoo.layers import BatchNormalization

FORMATS = ("saved_model", "onnx", "litert")


def _tiny_model():
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(3, 3, use_bias=False)(inputs)
    x = BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


@pytest.fixture(scope="module")
def tiny():
    return _tiny_model()


def _listing(directory):
    return sorted(os.path.relpath(os.path.join(root, name), directory)
                  for root, dirs, files in os.walk(directory) for name in dirs + files)


def _mount_tmpfs(path, size):
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


@pytest.fixture
def disk(tmp_path):
    """A 2 MB tmpfs at tmp_path/disk (root only), unmounted afterwards."""
    path = tmp_path / "disk"
    _mount_tmpfs(path, "2m")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory):
    """Fills the file system of `directory` to the last byte; returns the file."""
    filler = directory / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


@pytest.fixture
def read_only(tmp_path):
    """A directory holding version 1 that this process cannot write: on a
    read-only tmpfs as root (EROFS), else without write permission (EACCES)."""
    if os.geteuid() == 0:
        path = tmp_path / "ro"
        _mount_tmpfs(path, "1m")
        (path / "export" / "1").mkdir(parents=True)
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path / "export", errno.EROFS
        subprocess.run(["umount", "-l", str(path)], check=False)
    else:
        path = tmp_path / "export"
        (path / "1").mkdir(parents=True)
        path.chmod(0o555)
        yield path, errno.EACCES
        path.chmod(0o755)


def test_an_unwritable_export_dir_is_refused_before_anything_is_built(read_only, monkeypatch):
    base, code = read_only
    before = _listing(base)
    monkeypatch.setattr(exporter.models, "create_model",
                        lambda *a, **k: pytest.fail("the model was built before the check"))
    for target in (base, base / "new" / "deeper"):  # An existing one; one to create in it.
        for fmt in FORMATS:
            with pytest.raises(OSError) as raised:
                export.export_registered_model("bn_mlp", str(target), format=fmt)
            assert raised.value.errno == code
            assert raised.value.filename == str(base)
    assert _listing(base) == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_fails_with_enospc_and_leaves_nothing(tiny, disk, fmt):
    """The write fails on ENOSPC whichever library writes (TensorFlow's file
    system for the SavedModel, tf2onnx, LiteRT's converter): an OSError that
    names the version, no temporary, no new directory; freed, it works."""
    filler = _fill(disk)
    base = disk / "export"
    with pytest.raises(OSError) as raised:
        export.export_model(tiny, str(base), "mnist", format=fmt)
    assert raised.value.errno == errno.ENOSPC, raised.value
    assert raised.value.filename == str(base / "1")
    assert _listing(disk) == ["filler"]
    filler.unlink()
    path = export.export_model(tiny, str(base), "mnist", format=fmt)
    assert path == str(base / "1") and _listing(base)[0] == "1"


def test_the_command_says_what_to_do_in_one_line(read_only, tmp_path):
    base, code = read_only
    result = commands.run("trainers.export", ["--model=bn_mlp", f"--export_dir={base}"],
                          timeout=300, tf_log_level="2")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    strerror = os.strerror(code)
    assert lines == [f"ERROR ({'OSError' if code == errno.EROFS else 'PermissionError'}): "
                     f"Cannot write {base}: {strerror}. Nothing was written. Pass a writable "
                     "--export_dir and rerun."], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
