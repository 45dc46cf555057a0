"""Every `python -m trainers.<command>` prints bn_zoo's lines only, at the
default verbosity: real subprocesses with the environment a user has (no
TF_CPP_MIN_LOG_LEVEL, no --verbosity, an empty Keras cache), on tiny inputs.

Coverage (commands x strategies x formats): train with the default and the
mirrored strategy (2 logical CPUs), export of bn_mlp's shipped weights as a
SavedModel, ONNX, LiteRT float32 and LiteRT int8, evaluate (a tiny
BN-Inception on 10 synthetic ImageNet JPEGs, 10 crops), convert (a Caffe
BN-Inception state dict), figure1, figure3, ablation, lr_sweep,
scale_invariance and checkpoint_curve. The plain train run's lines are
checked in tests/test_trainer_output.py.

bn_zoo's lines, which is all a command that succeeds may print:

* stderr: progress lines `[H:MM:SS] message` and their continuation lines
  (indented by at least the stamp's width); a warning of bn_zoo's own is such a
  line too (`[H:MM:SS] WARNING: ...`).
* stdout: the command's results, whose line formats `STDOUT` lists for each
  command.

Anything else (an absl-prefixed log line, a Python warning, a native log or
`fully_quantize: ...` line, a Keras download progress bar) fails the test with
the command and the line.
"""

import os
import re
from concurrent import futures

import numpy as np
import pytest

import commands

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

STDERR_LINE = re.compile(r"^(\[\d+:\d\d:\d\d\] \S| {10,}\S)")
TINY_MNIST = ["num_train_steps=20", "steps_per_loop=10", "log_every_steps=10",
              "eval_every_steps=10", "checkpoint_every_steps=10",
              "data.train_split=train[:600]", "data.eval_split=test[:500]",
              "eval_batch_size=500", "probe.num_examples=50", "population_batches=2"]
TABLE = r"^\|.*\|$"
FIGURE3 = [TABLE, r"^$", r"^The paper's Figure 3 \(ImageNet, batch 32\):$",
           r"^Claims of Section 4\.2\.2:$", r"^- \[[ x]\] ", r"^Plot: \S+\.png$"]
# Each command's result lines (stdout), as regular expressions.
STDOUT = {
    "train_mirrored": [r"^final: eval_accuracy=\S+, .*step=20$"],
    **{f"export_{f}": [r"^/\S+/1$"] for f in ("saved_model", "onnx", "litert", "litert_int8")},
    "evaluate": [r"^10 crops \(.*\), 32x32, 10 images of \S+ validation$",
                 r"^model +top-1 +top-5 +top-1 err +top-5 err$",
                 r"^bn_inception \(\S+\) +\d+\.\d\d% +\d+\.\d\d% +\d+\.\d\d% +\d+\.\d\d%$"],
    "convert": [r"^Wrote \S+\.weights\.h5\. Load it with "
                r"bn_zoo\.create_model\('bn_inception', .*\)$"],
    "figure1": [r"^Figure 1 \(Section 4\.1\), MNIST test set, 20 steps:$",
                r"^  (baseline \(no BN\)|BN) .*: +\S+$", r"^targets:$",
                r"^  BN .*: (met|NOT met)", r"^Figure: \S+figure1\.png \(\d+ s\)$"],
    "figure3": FIGURE3,
    "ablation": FIGURE3 + [r"^Training time per run \(s\): \{.*\}; total \d+ s\.$"],
    "lr_sweep": [r"^Learning-rate sweep, 4 steps per run \(Section 3\.3\):$", r"^$", TABLE,
                 r"^mlp: good .*; bn_mlp: good .*\.$", r"^Claim \(",
                 r"^Time: \d+ s for \d+ runs\.$",
                 r"^Figure: \S+\.png$"],
    "scale_invariance": [r"^Scale invariance \(Section 3\.3\), 2 steps, \w+:$", r"^$", TABLE,
                         r"^Time: \d+ s\.$"],
    "checkpoint_curve": [r"^step +\d+: accuracy +\d+\.\d\d% with moving averages, +\d+\.\d\d% "
                         r"with population statistics$", r"^Written: \S+\.csv$"],
}
# A line each command must print on stderr (so the check above saw its progress).
PROGRESS = {
    "train_mirrored": r"Training bn_mlp for 20 steps with MirroredStrategy \(2 replicas\)",
    **{f"export_{f}": r"^\[[\d:]+\] Exported folded " for f in (
        "saved_model", "onnx", "litert", "litert_int8")},
    "evaluate": r"^\[[\d:]+\] 10 images: top-1 ",
    "convert": None,
    "figure1": r"Training bn_mlp for 20 steps",
    "figure3": None,
    "ablation": r"Training inception for 2 steps",
    "lr_sweep": r"Training bn_mlp for 4 steps",
    "scale_invariance": None,
    "checkpoint_curve": None,
}


def _run(name, args, tmp):
    """`python -m args...` as a user runs it (no TF_CPP_MIN_LOG_LEVEL), with
    an empty Keras cache of its own: the weights are copied in."""
    home = tmp / f"keras_{name}"
    home.mkdir()
    module, *rest = args
    return commands.run(module, rest, env=dict(os.environ, KERAS_HOME=str(home)), timeout=900,
                        tf_log_level=None)


def _caffe_state_dict(path):
    """A random state dict in the Caffe BN-Inception release's layout, without
    its classifier (converted with --noinclude_top)."""
    import torch

    from bn_zoo.models.releases import assign, caffe_torch

    model, _ = assign.build("caffe", {"include_top": False})
    rng = np.random.default_rng(0)
    state = {}
    for unit, (conv, bn) in assign.units(model).items():
        name = caffe_torch.caffe_unit(unit)
        h, w, c_in, c_out = conv.kernel.shape
        for key, shape in ((f"{name}.weight", (c_out, c_in, h, w)), (f"{name}.bias", (c_out,)),
                           (f"{name}_bn.weight", (c_out,)), (f"{name}_bn.bias", (c_out,)),
                           (f"{name}_bn.running_mean", (c_out,))):
            state[key] = torch.from_numpy(rng.normal(0, 0.1, shape).astype(np.float32))
        state[f"{name}_bn.running_var"] = torch.from_numpy(
            rng.uniform(0.5, 2, (c_out,)).astype(np.float32))
    torch.save(state, path)


def _imagenet_inputs(tmp):
    import bn_zoo
    import imagenet_training_helpers as helpers

    data = helpers.write_data(tmp / "imagenet", num_train=0, num_validation=10, num_classes=8)
    weights = str(tmp / "bn_inception.weights.h5")
    kwargs = {"input_shape": [32, 32, 3], "depth_multiplier": 0.1, "classes": 9}
    bn_zoo.create_model("bn_inception", **kwargs, seed=1).save_weights(weights)
    return data, weights, '{"input_shape": [32, 32, 3], "depth_multiplier": 0.1, "classes": 9}'


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """{command: CompletedProcess} of every command, two at a time."""
    if not os.environ.get("TFDS_DATA_DIR"):
        pytest.skip("needs MNIST prepared for TFDS ($TFDS_DATA_DIR)")
    tmp = tmp_path_factory.mktemp("commands")
    data, weights, kwargs = _imagenet_inputs(tmp)
    state_dict = tmp / "bn_inception_caffe.pth"
    _caffe_state_dict(state_dict)
    run_dir = tmp / "train_mirrored"
    tiny = [f"--config.{f}" for f in TINY_MNIST]
    at_first = {
        "train_mirrored": ["trainers.train", "--config=configs/mnist.py:bn_mlp",
                           f"--workdir={run_dir}", *tiny, "--strategy=mirrored",
                           "--config.num_cpu_devices=2"],
        "evaluate": ["trainers.evaluate", "--model=bn_inception", f"--weights={weights}",
                     f"--model_kwargs={kwargs}", "--source=tfrecord", f"--data_dir={data}",
                     "--num_classes=8", "--crops=10", "--batch_size=40"],
        "convert": ["trainers.convert", "--source=caffe_torch", f"--input={state_dict}",
                    f"--output={tmp / 'caffe.weights.h5'}", "--noinclude_top"],
        "figure1": ["trainers.figure1", "--config=configs/figure1.py",
                    f"--workdir={tmp / 'figure1'}", *[f"--config.train.{f}" for f in TINY_MNIST]],
        "ablation": ["trainers.ablation", "--config=configs/figure3_cpu.py",
                     f"--workdir={tmp / 'ablation'}", "--config.runs=('inception',)",
                     "--config.num_train_steps=2", "--config.eval_every_steps=2"],
        "lr_sweep": ["trainers.lr_sweep", "--config=configs/lr_sweep.py",
                     f"--workdir={tmp / 'lr_sweep'}", "--config.learning_rates=(0.5,)",
                     *[f"--config.train.{f}" for f in (
                         "num_train_steps=4", "steps_per_loop=2", "log_every_steps=2",
                         "eval_every_steps=2", "checkpoint_every_steps=4",
                         "population_batches=1", "data.train_split=train[:600]",
                         "data.eval_split=test[:500]", "eval_batch_size=500")]],
        "scale_invariance": ["trainers.scale_invariance", "--config=configs/scale_invariance.py",
                             f"--workdir={tmp / 'scale_invariance'}",
                             "--config.num_train_steps=2", "--config.log_every_steps=1",
                             "--config.train_split=train[:600]", "--config.test_split=test[:100]",
                             "--config.scales=(1.0,10.0)"],
    }
    for name, extra in (("saved_model", []), ("onnx", ["--format=onnx"]),
                        ("litert", ["--format=litert"]),
                        ("litert_int8", ["--format=litert", "--quantize=int8",
                                         "--calibration_steps=2"])):
        at_first[f"export_{name}"] = ["trainers.export", "--model=bn_mlp", "--weights=mnist",
                                      f"--export_dir={tmp / ('export_' + name)}", *extra]
    later = {  # Read the mirrored run's workdir.
        "figure3": ["trainers.figure3", f"--workdirs={run_dir}", "--baseline=", "--target=0.1",
                    f"--output={tmp / 'figure3.png'}"],
        "checkpoint_curve": ["trainers.checkpoint_curve", f"--workdir={run_dir}",
                             "--population_batches=2"],
    }
    results = {}
    with futures.ThreadPoolExecutor(2) as pool:
        first = {name: pool.submit(_run, name, args, tmp) for name, args in at_first.items()}
        results["train_mirrored"] = first["train_mirrored"].result()
        second = {name: pool.submit(_run, name, args, tmp) for name, args in later.items()}
        for name, future in {**first, **second}.items():
            results[name] = future.result()
    return results


def _foreign(lines, patterns):
    return [line for line in lines if not any(re.search(p, line) for p in patterns)]


@pytest.mark.parametrize("command", sorted(STDOUT))
def test_a_command_prints_only_bn_zoo_lines(outputs, command):
    result = outputs[command]
    assert result.returncode == 0, (command, result.stderr[-3000:])
    err = result.stderr.splitlines()
    assert _foreign(err, [STDERR_LINE.pattern]) == [], (command, result.stderr[-3000:])
    if PROGRESS[command]:
        assert any(re.search(PROGRESS[command], line) for line in err), (command, err)
    out = result.stdout.splitlines()
    assert out, command
    assert _foreign(out, STDOUT[command]) == [], (command, result.stdout[-3000:])
