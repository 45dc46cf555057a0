"""bn_zoo installs like a library: one wheel, one top-level package, console
commands that run from any directory, configs found by name.

The wheel is built from a copy of the checkout (`pip wheel --no-deps`) and
installed (`pip install --no-deps`) into a fresh virtual environment that
sees the installed TensorFlow, Keras and the other dependencies, so nothing
is reinstalled. It sees them through a `.pth` line naming the system
site-packages directory, rather than `--system-site-packages`: that would
also run the checkout's editable-install hook, which maps the top-level
`trainers` and `configs` folders to the checkout and so would hide an
installed module that still imports them. Every command runs from a
directory outside the checkout.
"""

import json
import os
import shutil
import site
import subprocess
import zipfile

import numpy as np
import pytest

import commands
from commands import ROOT

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

SOURCES = ("pyproject.toml", "setup.py", "README.md", "bn_zoo", "trainers", "configs")
COMMANDS = ("bn-zoo-train", "bn-zoo-export", "bn-zoo-evaluate", "bn-zoo-convert",
            "bn-zoo-figure1", "bn-zoo-figure3", "bn-zoo-ablation", "bn-zoo-lr-sweep",
            "bn-zoo-scale-invariance", "bn-zoo-checkpoint-curve")


def _run(command, cwd, env=None, timeout=600):
    """Runs `command` (an argv: the venv's python, an installed console
    command, or `commands.command` for a module of this interpreter) and
    asserts it succeeded."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-3000:])
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a copy of the checkout (the build writes build/
    and *.egg-info next to its sources)."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, source / name)
    wheels = tmp_path_factory.mktemp("wheels")
    _run(commands.command("pip", ["wheel", "--no-deps", "--no-build-isolation", "--no-index",
                                  "-q", "-w", wheels, source]), cwd=str(source))
    (path,) = wheels.glob("*.whl")
    return str(path)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """(environment variables with the venv's bin/ first, a directory outside
    the checkout) after installing the wheel into a fresh venv."""
    venv = tmp_path_factory.mktemp("venv")
    _run(commands.command("venv", ["--without-pip", "--clear", venv]), cwd=str(venv))
    python = str(venv / "bin" / "python")
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                   cwd=str(venv)).stdout.strip()
    with open(os.path.join(purelib, "_system_site_packages.pth"), "w") as f:
        f.write("\n".join(site.getsitepackages()) + "\n")  # Paths only: no hook runs.
    _run(commands.command("pip", ["--python", python, "install", "--no-deps", "--no-index",
                                  "-q", wheel]), cwd=str(venv))
    env = commands.environment(tf_log_level="2", PYTHONPATH=None, PYTHONHOME=None,
                               PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    outside = tmp_path_factory.mktemp("elsewhere")
    return env, str(outside), python, purelib


def test_the_wheel_installs_one_top_level_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(
        (".dist-info", ".data"))}
    assert top == {"bn_zoo"}, sorted(top)
    for module in ("bn_zoo/trainers/train.py", "bn_zoo/trainers/quiet.py",
                   "bn_zoo/configs/__init__.py", "bn_zoo/configs/mnist.py",
                   "bn_zoo/weights/bn_mlp_mnist.weights.h5",
                   "bn_zoo/weights/bn_mlp_mnist.weights.h5.sha256"):
        assert module in names, module
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(entry_points).decode()
    for command in COMMANDS:
        assert f"{command} = bn_zoo.trainers." in text, command


def test_installed_package_stands_alone(installed):
    env, outside, python, purelib = installed
    script = ("import importlib.util, json, bn_zoo, bn_zoo.configs, bn_zoo.trainers; "
              "print(json.dumps([bn_zoo.__file__, bn_zoo.configs.__file__, "
              "[importlib.util.find_spec(n) is None for n in ('trainers', 'configs')]]))")
    out = _run([python, "-c", script], cwd=outside, env=env).stdout
    package, configs, absent = json.loads(out.strip().splitlines()[-1])
    assert package == os.path.join(purelib, "bn_zoo", "__init__.py")
    assert configs == os.path.join(purelib, "bn_zoo", "configs", "__init__.py")
    assert absent == [True, True]  # No top-level trainers or configs.
    for command in COMMANDS:
        assert shutil.which(command, path=env["PATH"]).startswith(os.path.dirname(python))


def test_export_command_end_to_end(installed, tmp_path):
    """`bn-zoo-export` of the registered MNIST weights: the SavedModel it
    writes classifies the MNIST test digits (labels as the reference)."""
    import tensorflow as tf

    from bn_zoo.data import mnist

    env, outside, _, _ = installed
    export_dir = tmp_path / "exported"
    out = _run(["bn-zoo-export", "--model=bn_mlp", "--weights=mnist",
                f"--export_dir={export_dir}"], cwd=outside, env=env).stdout
    path = out.strip().splitlines()[-1]
    assert path == str(export_dir / "1")
    images, labels = mnist.load("test[:1000]")
    serve = tf.saved_model.load(path).signatures["serving_default"]
    probabilities = serve(images=tf.constant(images, tf.float32))["probabilities"].numpy()
    assert np.mean(probabilities.argmax(-1) == labels) > 0.95


def test_train_command_finds_configs_by_name(installed):
    """`--config` by name and in the checkout's spelling, from elsewhere:
    the installed package's config files (a short training run end to end
    is in the checkout's tests; here the export command is the one)."""
    env, outside, _, purelib = installed
    configs = os.path.join(purelib, "bn_zoo", "configs")
    described = _run(["bn-zoo-train", "--config=mnist:bn_mlp", "--print_config"],
                     cwd=outside, env=env).stdout
    unwrapped = "".join(described.split())  # The text is wrapped, at hyphens too.
    assert f"Config{os.path.join(configs, 'mnist.py')}:bn_mlp" in unwrapped
    assert "model.name='bn_mlp'" in unwrapped, described[:2000]
    described = _run(["bn-zoo-train", "--config=configs/mnist.py:mlp", "--print_config"],
                     cwd=outside, env=env).stdout
    unwrapped = "".join(described.split())
    assert f"Config{os.path.join(configs, 'mnist.py')}:mlp" in unwrapped
    assert "model.name='mlp'" in unwrapped, described[:2000]


def test_every_installed_config_loads_by_name(installed):
    """Each config file of the wheel, and each of its variants, loads from
    the installed package (none imports the checkout's folders)."""
    env, outside, python, _ = installed
    script = """
import importlib.util, json
from bn_zoo.training import config_files
loaded = {}
for name in config_files.available():
    spec = importlib.util.spec_from_file_location(name + "_config", config_files.find(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # As ml_collections loads a --config file.
    variants = list(getattr(module, "VARIANTS", None) or [None])
    loaded[name] = [str(type(module.get_config(*([v] if v else [])))) for v in variants]
print(json.dumps(loaded))
"""
    out = _run([python, "-c", script], cwd=outside, env=env).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert {"mnist", "imagenet", "figure1"} <= set(loaded), sorted(loaded)


def test_console_commands_answer_help_before_tensorflow(installed):
    """Each `bn-zoo-*` command answers --help (exit 0, nothing on stderr)
    without importing TensorFlow or Keras: the package's `__init__` defers
    the library to first use in a console command, so the command's own
    module quiets TensorFlow first. `-X importtime` lists every import."""
    env, outside, python, _ = installed
    env = commands.environment(env, tf_log_level=None)
    for command in COMMANDS:
        script = shutil.which(command, path=env["PATH"])
        result = subprocess.run([python, "-X", "importtime", script, "--help"], cwd=outside,
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (command, result.stderr[-2000:])
        imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                    if line.startswith("import time:")]
        assert imported and not [name for name in imported
                                 if name.split(".")[0] in ("tensorflow", "keras")], command
        others = [line for line in result.stderr.splitlines()
                  if not line.startswith("import time:")]
        assert others == [], (command, others)
        assert "--helpfull" in result.stdout, command


def test_console_command_prints_only_bn_zoo_lines(installed, tmp_path):
    """An installed command run as a user runs it (TF_CPP_MIN_LOG_LEVEL
    unset) prints bn_zoo's time-stamped progress lines on stderr and nothing
    of TensorFlow's start-up."""
    import re

    env, outside, _, _ = installed
    env = commands.environment(env, tf_log_level=None)
    result = _run(["bn-zoo-export", "--model=mlp", "--weights=mnist",
                   f"--export_dir={tmp_path / 'exported'}"], cwd=outside, env=env)
    lines = result.stderr.splitlines()
    assert lines, result.stderr
    foreign = [line for line in lines if not re.match(r"(\[\d+:\d\d:\d\d\] |  )", line)]
    assert foreign == [], foreign
