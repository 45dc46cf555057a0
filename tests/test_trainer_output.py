"""What `python -m trainers.train` prints (issue 16), with the environment a
user has (no TF_CPP_MIN_LOG_LEVEL):

- a short run: bn_zoo's progress lines on stderr and the results on stdout,
  none of TensorFlow's start-up lines, TFDS' or the checkpointer's logs;
- a missing data set: one error line at once; nothing is downloaded;
- `--print_config`: every field, its value, origin, default and meaning, and
  no workdir.

The three commands run as real subprocesses, in parallel. The rules behind
them (trainers/quiet.py, the field docs) are checked in-process, and so is the
README's population statistics snippet, which builds its `train_dataset`."""

import logging
import os
import re
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "mnist_bn_mlp.py")
SHORT = ["--config.num_train_steps=20", "--config.steps_per_loop=10",
         "--config.log_every_steps=10", "--config.eval_every_steps=10",
         "--config.checkpoint_every_steps=10", "--config.data.train_split=train[:600]",
         "--config.data.eval_split=test[:500]", "--config.eval_batch_size=500",
         "--config.probe.num_examples=50", "--config.population_batches=2"]
# Lines the run printed before issue 16.
CHATTER = ("oneDNN", "cuda", "cuInit", "absl::InitializeLog", "cpu_feature_guard",
           "Sharding callback", "dataset_info", "tf_record_dataset_op",
           "Constructing tf.data", "fingerprint")
ABSL_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ (\w+\.py):\d+\] ")


def _our_files():
    names = set()
    for top in ("bn_zoo", "trainers"):
        for _, _, files in os.walk(os.path.join(ROOT, top)):
            names.update(f for f in files if f.endswith(".py"))
    return names


def launch(args):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.Popen([sys.executable, "-m", "trainers.train", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_run_prints_bn_zoo_lines_only_and_errors_and_config_show(tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    run = launch([f"--config={CONFIG}", f"--workdir={tmp_path / 'run'}", *SHORT])
    missing = launch([f"--config={CONFIG}", f"--workdir={tmp_path / 'missing'}", *SHORT,
                      f"--data_dir={empty}"])
    printed = launch([f"--config={CONFIG}", f"--workdir={tmp_path / 'printed'}",
                      "--print_config", "--config.num_train_steps=7"])

    # TFDS' own download would retry for minutes; the bound is generous for a
    # loaded machine (no wall-clock assertion: the data is never fetched, which
    # the in-process test below checks at the socket).
    out, err = missing.communicate(timeout=300)
    assert missing.returncode == 1 and out == ""
    assert err.startswith("ERROR (DataNotFoundError): The MNIST data set is not prepared under")
    assert "never downloads" in err and "download_and_prepare" in err
    assert err.count("\n") == 1, err  # One line: no library chatter before it.
    assert os.listdir(empty) == [] and not os.path.exists(tmp_path / "missing")

    out, err = printed.communicate(timeout=120)
    assert printed.returncode == 0 and err == "", err
    from bn_zoo.training import config as config_lib

    for path in config_lib.field_docs("mnist"):
        assert re.search(rf"^{re.escape(path)} = ", out, re.M), path
    assert "\nnum_train_steps = 7  [command line; default None]\n" in out
    assert ("\noptimizer.base_learning_rate = 0.25  [recipe base_learning_rate; "
            "default None]\n") in out
    assert "\nprobe.layer = 'hidden3_sigmoid'  [config file; default '']\n" in out
    assert "    Length of the run, in training steps." in out
    assert not os.path.exists(tmp_path / "printed")

    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    assert out.startswith("final: eval_accuracy=") and out.count("\n") == 1, out
    for word in CHATTER:
        assert word not in err, (word, err[-3000:])
    lines = err.splitlines()
    assert any("step 20/20: train_loss=" in line for line in lines), err
    assert any("Population statistics from 2 batches" in line for line in lines), err
    ours = _our_files()
    for line in lines:
        match = ABSL_LINE.match(line)
        assert match and match.group(1) in ours, line


def test_missing_mnist_fails_at_once_without_touching_the_network(tmp_path, monkeypatch):
    from bn_zoo.data import DataNotFoundError, mnist

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    with pytest.raises(DataNotFoundError, match="never downloads.*download_and_prepare"):
        mnist.load("train", str(tmp_path))
    assert attempts == [] and os.listdir(tmp_path) == []


def test_readme_population_snippet_runs_as_written_and_gives_its_accuracies():
    from bn_zoo.data import mnist

    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text[text.index("## Population statistics"):]
    snippet = section[section.index("```python\n") + 10: section.index("```\n", 10)]
    namespace = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    population_stated, moving_stated = (float(x) for x in re.findall(r"\b0\.\d{4}\b", snippet))
    assert namespace["accuracy"] == pytest.approx(population_stated, abs=5e-5)
    images, labels = mnist.load("test")
    model = namespace["model"]  # Switched back to the moving averages.
    moving = (model.predict(images, verbose=0).argmax(-1) == labels).mean()
    assert moving == pytest.approx(moving_stated, abs=5e-5)


def test_every_config_field_of_every_data_source_has_a_meaning():
    from bn_zoo.training import config as config_lib
    from bn_zoo.training import inputs

    for name in inputs.INPUTS:
        schema = config_lib.to_dict(config_lib.default_config())
        schema["data"] = config_lib.to_dict(inputs.default_config(name))
        docs = config_lib.field_docs(name)
        assert set(config_lib.flat_fields(schema)) == set(docs), name
        assert all(docs.values()), name


CAPTURED = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796087475.446334    5840 port.cc:153] oneDNN custom operations are on.
I0000 00:00:1796087475.531820    5840 cpu_feature_guard.cc:227] This TensorFlow binary
To enable the following instructions: AVX2 AVX512F, in other operations, rebuild.
/somewhere/module.py:3: DeprecationWarning: a Python warning
  import foo
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
W0000 00:00:1796087477.647133    5840 stub.cc:31] a warning
E0000 00:00:1796087479.071908    5840 cuda_platform.cc:52] failed call to cuInit: CUDA error
2024-01-01 10:00:00.123456: E tensorflow/core/x.cc:1] an error
"""


def test_the_start_up_filter_keeps_errors_and_what_the_level_asks_for():
    from trainers import quiet

    python_warning = "/somewhere/module.py:3: DeprecationWarning: a Python warning\n  import foo\n"
    assert quiet.kept_lines(CAPTURED, 0, False) == CAPTURED
    # The default: errors, Python output, no cuInit on a machine without an NVIDIA device.
    assert quiet.kept_lines(CAPTURED, 2, True) == (
        python_warning + CAPTURED.splitlines(keepends=True)[6] + CAPTURED.splitlines()[-1] + "\n")
    assert "cuInit" in quiet.kept_lines(CAPTURED, 2, False)
    assert quiet.kept_lines(CAPTURED, 3, False) == python_warning
    assert [quiet.verbosity_argument(["m", *a]) for a in (
        [], ["--verbosity=1"], ["-v", "-2"], ["--v=info"], ["--", "-v=3"])] == [
        None, 1, -2, 0, None]
    assert [quiet.cpp_log_level(v) for v in (None, 1, 0, -1, -2, -3)] == [2, 0, 0, 1, 2, 3]


def test_the_python_filter_keeps_bn_zoo_records_and_library_errors():
    import bn_zoo
    from trainers import quiet

    only_ours = quiet.OnlyOurInfo()

    def record(path, level):
        return logging.LogRecord("absl", level, path, 1, "message", None, None)

    ours = os.path.join(os.path.dirname(bn_zoo.__file__), "training", "trainer.py")
    library = os.path.join(os.path.dirname(logging.__file__), "tensorflow_datasets.py")
    assert only_ours.filter(record(ours, logging.INFO))
    assert not only_ours.filter(record(library, logging.INFO))
    assert not only_ours.filter(record(library, logging.WARNING))
    assert only_ours.filter(record(library, logging.ERROR))
