"""What `python -m trainers.train` prints, with the environment a user has
(no TF_CPP_MIN_LOG_LEVEL):

- a short run: bn_zoo's progress lines on stderr (`[H:MM:SS] message`, no
  absl prefix) and the results on stdout, none of TensorFlow's start-up
  lines, TFDS' or the checkpointer's logs; a line before each slow phase and
  its duration after; the progress and evaluation lines name the steps their
  training means cover, and their values are those of TensorBoard's
  train/loss (the progress window) and of metrics.csv (the evaluation window);
- a missing data set: one error line at once; nothing is downloaded;
- `--print_config`: every field, its value, origin, default and meaning, and
  no workdir.

The three commands run as real subprocesses, in parallel. The rules behind
them (trainers/quiet.py, the field docs) are checked in-process, and so is the
README's population statistics snippet, which builds its `train_dataset`."""

import csv
import logging
import os
import re
import socket

import pytest

import commands
from commands import ROOT

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

CONFIG = commands.config_path("mnist", "bn_mlp")
SHORT = ["--config.num_train_steps=30", "--config.steps_per_loop=10",
         "--config.log_every_steps=10", "--config.eval_every_steps=30",
         "--config.checkpoint_every_steps=10", "--config.data.train_split=train[:600]",
         "--config.data.eval_split=test[:500]", "--config.eval_batch_size=500",
         "--config.probe.num_examples=50", "--config.population_batches=2"]
# Lines the run printed before its output was bn_zoo's own.
CHATTER = ("oneDNN", "cuda", "cuInit", "absl::InitializeLog", "cpu_feature_guard",
           "Sharding callback", "dataset_info", "tf_record_dataset_op",
           "Constructing tf.data", "fingerprint")
STAMP = r"\[\d+:\d\d:\d\d\] "
NUMBER = r"(-?\d+\.\d+)"
# The lines of the run, in order (each a regular expression; others may come between).
EXPECTED = [
    rf"{STAMP}Training bn_mlp for 30 steps with _DefaultDistributionStrategy \(1 replica\), "
    r"global batch 60, in \S+\.$",
    rf"{STAMP}Loading the data \(mnist: train on 'train\[:600\]', evaluate on 'test\[:500\]', "
    r"from \S+\)\.\.\.$",
    rf"{STAMP}Loaded the data in \d+(\.\d)? s\.$",
    rf"{STAMP}Columns \(as in metrics\.csv\):$",
    r"^ {10,}train_loss, train_accuracy: mean over the training batches of the steps named "
    r"on the line \(step lines: the last 10 steps; 'eval at step' lines and metrics\.csv: "
    r"the steps since the previous evaluation, or since the run resumed\)$",
    r"^ {10,}probe_p15/p50/p85: the 15th, 50th, 85th percentiles of unit 0 of the input of "
    r"layer 'hidden3_sigmoid' over the first 50 'test\[:500\]' images",
    rf"{STAMP}Evaluating step 0 \(the first evaluation traces the evaluation step\)\.\.\.$",
    rf"{STAMP}eval at step 0/30: eval_loss {NUMBER}, eval_accuracy {NUMBER}, ",
    rf"{STAMP}Tracing the training step, then running steps 1-10\.\.\.$",
    rf"{STAMP}Traced the training step and ran steps 1-10 in \d+(\.\d)? s\.$",
    rf"{STAMP}step 10/30 \(33%\): train_loss {NUMBER}, train_accuracy {NUMBER} over "
    r"steps 1-10; lr 0\.25; \d+\.\d steps/s$",
    rf"{STAMP}step 20/30 \(67%\): train_loss {NUMBER}, train_accuracy {NUMBER} over "
    r"steps 11-20; lr 0\.25; \d+\.\d steps/s, \d+(\.\d)? s left$",
    rf"{STAMP}step 30/30 \(100%\): train_loss {NUMBER}, train_accuracy {NUMBER} over "
    r"steps 21-30; lr 0\.25; \d+\.\d steps/s$",
    rf"{STAMP}eval at step 30/30: eval_loss {NUMBER}, eval_accuracy {NUMBER}, eval_top5_accuracy "
    rf"{NUMBER}; train_loss {NUMBER}, train_accuracy {NUMBER} over steps 1-30; probe_p15/p50/p85 "
    rf"{NUMBER} {NUMBER} {NUMBER} \(\d+(\.\d)? s\)$",
    rf"{STAMP}Estimating the population statistics \(Algorithm 2\) from 2 training "
    r"batches\.\.\.$",
    rf"{STAMP}Population statistics from 2 batches in \d+(\.\d)? s: eval_accuracy "
    rf"{NUMBER} with the moving averages, {NUMBER} with the population statistics",
]


def _matches_in_order(lines, patterns):
    """[match of each pattern], found in `lines` in this order."""
    found, at = [], 0
    for pattern in patterns:
        for index in range(at, len(lines)):
            match = re.search(pattern, lines[index])
            if match:
                found.append(match)
                at = index + 1
                break
        else:
            raise AssertionError(f"no line after line {at} matches {pattern!r}:\n"
                                 + "\n".join(lines))
    return found


def launch(args):
    """`python -m trainers.train args...` as a user runs it (no TF_CPP_MIN_LOG_LEVEL)."""
    return commands.launch("trainers.train", args, tf_log_level=None)


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
    # The progress lines up to the data, then the one error line; no library chatter.
    *progress, error = err.splitlines()
    assert error.startswith("ERROR (DataNotFoundError): The MNIST data set is not prepared "
                            f"under {str(empty)!r}")
    assert "never downloads" in error and "download_and_prepare" in error
    assert [re.sub(STAMP, "", line) for line in progress] == [
        f"Training bn_mlp for 30 steps with _DefaultDistributionStrategy (1 replica), global "
        f"batch 60, in {tmp_path / 'missing'}.",
        "Loading the data (mnist: train on 'train[:600]', evaluate on 'test[:500]', from "
        f"{empty})..."]
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
    for line in lines:  # bn_zoo's lines only: time-stamped, or a continuation.
        assert re.match(rf"{STAMP}\S| {{10,}}\S", line), line
    found = _matches_in_order(lines, EXPECTED)
    from bn_zoo.training import summaries

    run_dir = tmp_path / "run"
    board = summaries.read_scalars(next(str(p) for p in (run_dir / "tensorboard").rglob(
        "*tfevents*")))
    logged = dict(board["train/loss"])
    for line, step in zip(found[10:13], (10, 20, 30)):  # The progress window's mean.
        assert float(line.group(1)) == pytest.approx(logged[step], abs=5e-5), (step, line)
    with open(run_dir / "metrics.csv") as f:  # The evaluation window's: metrics.csv's row.
        row = next(r for r in csv.DictReader(f) if r["step"] == "30")
    values = [float(v) for v in found[13].groups()[:5] if v is not None]
    assert values == pytest.approx([float(row[k]) for k in (
        "eval_loss", "eval_accuracy", "eval_top5_accuracy", "train_loss", "train_accuracy")],
        abs=5e-5)
    assert float(found[13].group(4)) != pytest.approx(float(found[12].group(1)), abs=1e-4)


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


def test_the_native_stderr_filter_drops_what_the_level_hides_line_by_line():
    """What native code writes while a command runs (after start-up) goes
    through quiet.NativeLineFilter: the same rule as the start-up capture,
    one line at a time, plus the LiteRT converter's unprefixed info line."""
    from trainers import quiet

    keep = quiet.NativeLineFilter(2, True)
    lines = CAPTURED.splitlines(keepends=True) + [
        "fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32\n",
        "Traceback (most recent call last):\n"]
    kept = "".join(keep(line.encode()).decode() for line in lines)
    # Lines that are not logs (a continuation line too), an error with its preamble.
    assert kept == "".join(lines[i] for i in (3, 4, 5, 6, 9, 11))
    everything = quiet.NativeLineFilter(0, False)
    assert "".join(everything(line.encode()).decode() for line in lines) == "".join(lines)
