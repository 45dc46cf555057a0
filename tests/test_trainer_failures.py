"""Every failure of `python -m trainers.train` is clean.

Each case checks the one-line message, the exit code and the directories
before and after, of the real command in a subprocess (flags and config
files, cluster deadlines, signals, full disks, export) or, for a refusal of
training.train itself, of the `cli.run` that prints it in that command:

- refused runs leave nothing: a split smaller than one batch, a NaN at the
  first steps (m' = 1: tests/test_trainer_cli.py); a config file that is missing or does not parse; a
  malformed `TF_CONFIG` or a task index out of range; `--strategy=tpu` with
  no TPU named; a read-only workdir;
- no hangs: a TPU address where nothing listens and a `TF_CONFIG` peer that
  never starts end at `--cluster_timeout` with the address named, and SIGTERM
  ends a process waiting for its peer;
- preemption: after a run of another config SIGKILLed before its first
  checkpoint, SIGTERM and then SIGINT mid-run each save a checkpoint and stop
  with one line; the resumed run (which also falls back past a truncated
  newest checkpoint, naming both, as the export of that workdir does) ends
  with the weights, metrics (one step-0 row, its empty cells kept) and
  TensorBoard points of an uninterrupted run computed in this process;
- a full disk (a real 1 MiB tmpfs) stops with one line and leaves no
  `ckpt-N_temp`; files are created 0644 under umask 022; a read-only
  `--export_dir` is one line too.

The tmpfs cases need root (mount); elsewhere they are skipped.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import commands
import config_flags
from commands import error_line
from file_tree import snapshot
from training_state import assert_same_training_state

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

CONFIG = commands.config_path("mnist", "bn_mlp")
TINY = ["--config.data.train_split=train[:600]", "--config.data.eval_split=test[:300]",
        "--config.eval_batch_size=300", "--config.probe.num_examples=50",
        "--config.population_batches=0"]


def launch(args, env=None, module="trainers.train"):
    """`python -m module args...` with TensorFlow's C++ errors kept."""
    return commands.launch(module, args, env=env, tf_log_level="2")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tmpfs(tmp_path):
    """mount(name, options): a new tmpfs at tmp_path/name, or None where this
    user cannot mount one (not root)."""
    mounted = []

    def mount(name, options):
        path = tmp_path / name
        path.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                capture_output=True)
        if result.returncode:
            path.rmdir()
            return None
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)


def configured(args):
    """The config `python -m trainers.train` builds from `args`
    (--config.<field>=value, --strategy, --tpu) on configs/mnist.py:bn_mlp."""
    from configs import mnist as mnist_configs

    config = mnist_configs.get_config("bn_mlp")
    for arg in args:
        name, value = arg[2:].split("=", 1)
        if name in ("strategy", "tpu"):
            config[name] = value
        else:
            config_flags.apply(config, [arg])
    return config


def refused_in_process(args, workdir, capsys):
    """(exit code, stderr) of trainers.train's main for `args`, without its
    flag parsing: `cli.run` prints the ERROR line and exits, as in main."""
    from bn_zoo import training
    from bn_zoo.training import cli

    config = configured(args)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        cli.run(lambda: training.train(config, str(workdir)))
    return exited.value.code, capsys.readouterr().err


def test_refused_commands_say_why_and_leave_nothing(tmp_path, tmpfs, monkeypatch, capsys):
    """Validation failures: one ERROR line each, exit code 1, the workdir
    never created (or the existing directory unchanged).

    What happens before or around training.train (flag and config file
    parsing, the cluster deadlines, which end the process, and the export
    command) runs as real commands, in parallel; the refusals of
    training.train itself run meanwhile in this process through `cli.run`,
    which prints them for trainers.train's main (their command line:
    tests/test_trainer_cli.py, tests/test_trainer_output.py)."""
    bad_syntax = tmp_path / "bad_config.py"
    bad_syntax.write_text("import ml_collections\n\ndef get_config(:\n    pass\n")
    read_only = tmpfs("read_only", "ro,size=64k")  # None: not root, cases left out.
    untouched = tmp_path / "untouched"  # An existing directory holding something.
    untouched.mkdir()
    (untouched / "notes.txt").write_text("mine\n")
    before = snapshot(untouched)
    tpu_port, peer_port, own_port = free_port(), free_port(), free_port()
    two_workers = {"worker": [f"127.0.0.1:{own_port}", f"127.0.0.1:{peer_port}"]}

    def workdir(name):
        return f"--workdir={tmp_path / name}"

    in_subprocess = {  # name: (arguments, TF_CONFIG or None, expected message pattern)
        "missing_config": ([f"--config={tmp_path / 'nope.py'}", workdir("missing"),
                            "--verbosity=-1"], None,
                           r"ERROR \(ConfigError\): The config file '.*nope\.py' does not "
                           r"exist .*--config=configs/mnist\.py:bn_mlp\."),
        "config_syntax": ([f"--config={bad_syntax}", workdir("syntax")], None,
                          rf"ERROR \(ConfigError\): The config file {bad_syntax} has a "
                          r"syntax error at line 3: .*Fix that line\."),
        "tpu_silent": ([f"--config={CONFIG}", workdir("tpu_silent"), "--strategy=tpu",
                        f"--tpu=grpc://127.0.0.1:{tpu_port}", "--cluster_timeout=3"], None,
                       rf"ERROR \(ClusterError\): Could not connect to the TPU "
                       rf"'grpc://127.0.0.1:{tpu_port}' within 3 s: no answer from "
                       rf"127\.0\.0\.1:{tpu_port}\..*--cluster_timeout"),
        "peer_silent": ([f"--config={CONFIG}", workdir("peer"),
                         "--strategy=multi_worker_mirrored", "--cluster_timeout=8"],
                        json.dumps({"cluster": two_workers,
                                    "task": {"type": "worker", "index": 0}}),
                        r"ERROR \(ClusterError\): Could not connect to the other workers "
                        rf"of TF_CONFIG within 8 s: no answer from worker 1 at "
                        rf"127\.0\.0\.1:{peer_port}\."),
    }
    in_process = {  # name: (arguments, workdir, TF_CONFIG or None, expected pattern)
        "split": (["--config.num_train_steps=50", "--config.data.train_split=train[:10]"],
                  tmp_path / "split", None,
                  r"ERROR \(ConfigError\): The training split has 10 examples, fewer than "
                  r"one global batch of 60\. Nothing was written\. Use a larger "
                  r"config\.data\.train_split"),
        "nan": ([*TINY, "--config.num_train_steps=50", "--config.steps_per_loop=10",
                 "--config.optimizer.base_learning_rate=1e38"], untouched, None,
                r"ERROR \(NonFiniteLossError\): .*NaN/Inf between step 0 and step 10; "
                r"training stopped and no checkpoint was saved\. Lower "
                r"config\.optimizer\.base_learning_rate"),
        "tf_config_json": (["--strategy=multi_worker_mirrored"], tmp_path / "json",
                           '{"cluster": ',
                           r"ERROR \(ConfigError\): The environment variable TF_CONFIG is "
                           r"not valid JSON \(Expecting value: line 1 column 13"),
        "tf_config_index": (["--strategy=multi_worker_mirrored"], tmp_path / "index",
                            json.dumps({"cluster": two_workers,
                                        "task": {"type": "worker", "index": 2}}),
                            r"ERROR \(ConfigError\): TF_CONFIG's task index 2 is out of "
                            r"range: its cluster has 2 worker task\(s\), indices 0 to 1\."),
        "tpu_unnamed": (["--strategy=tpu"], tmp_path / "tpu", None,
                        r"ERROR \(ConfigError\): --strategy=tpu needs a TPU: none was "
                        r"named and this machine is not a TPU VM \(.*\)\. Name one with "
                        r"--tpu"),
    }
    if read_only is not None:
        in_process["read_only"] = (
            [], read_only / "run", None,
            rf"ERROR \(WorkdirError\): --workdir={read_only}/run cannot be "
            rf"written: {read_only} is on a read-only file system\.")
        in_subprocess["export_read_only"] = (
            ["--model=bn_mlp", f"--export_dir={read_only / 'export'}"], None,
            rf"ERROR \(OSError\): Cannot write {read_only}(/export)?: Read-only file "
            r"system\. Nothing was written\. Pass a writable --export_dir and rerun\.")

    processes = {}
    for name, (args, tf_config, _) in in_subprocess.items():
        env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        if tf_config is not None:
            env["TF_CONFIG"] = tf_config
        module = "trainers.export" if name.startswith("export") else "trainers.train"
        processes[name] = launch(args, env, module=module)

    monkeypatch.setattr(sys, "argv", ["trainers/train.py"])  # No --verbosity.
    for name, (args, run_dir, tf_config, pattern) in in_process.items():
        if tf_config is None:
            monkeypatch.delenv("TF_CONFIG", raising=False)
        else:
            monkeypatch.setenv("TF_CONFIG", tf_config)
        code, err = refused_in_process(args, run_dir, capsys)
        assert code == 1, (name, code, err[-3000:])
        assert re.fullmatch(pattern + ".*", error_line(err)), (name, err[-3000:])

    for name, process in processes.items():
        err = process.communicate(timeout=600)[1]
        if name == "missing_config":  # --verbosity: the traceback, then the line.
            assert "Traceback" in err and "No such file or directory" in err, err[-3000:]
            err = err[err.rindex("ERROR ("):]
        # TensorFlow holds the interpreter while it waits for a peer: the
        # watchdog process reports and kills it.
        codes = (1, -signal.SIGKILL) if name == "peer_silent" else (1,)
        assert process.returncode in codes, (name, process.returncode, err[-3000:])
        line = error_line(err)
        assert re.fullmatch(in_subprocess[name][2] + ".*", line), (name, err[-3000:])

    mounts = ["read_only"] if read_only else []
    assert sorted(os.listdir(tmp_path)) == ["bad_config.py", *mounts, "untouched"]
    assert snapshot(untouched) == before
    assert read_only is None or os.listdir(read_only) == []


def test_sigterm_ends_a_worker_waiting_for_its_peer(tmp_path):
    own, peer = free_port(), free_port()
    env = dict(os.environ, TF_CONFIG=json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{own}", f"127.0.0.1:{peer}"]},
        "task": {"type": "worker", "index": 0}}))
    process = launch([f"--config={CONFIG}", f"--workdir={tmp_path / 'run'}",
                      "--strategy=multi_worker_mirrored", "--cluster_timeout=600"], env)
    from bn_zoo.training.cluster import answers

    while not answers(f"127.0.0.1:{own}") and process.poll() is None:
        time.sleep(0.1)  # Until its server listens: it is waiting for the peer.
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)  # Far less than --cluster_timeout.
    assert process.returncode in (-signal.SIGKILL, -signal.SIGTERM), err[-3000:]
    assert "Traceback" not in err
    assert err.rstrip().splitlines()[-1] == ("Stopped by SIGTERM while connecting to the "
                                             "other workers of TF_CONFIG; nothing was written.")
    assert not os.path.exists(tmp_path / "run")


# The preemption run: 200 steps of 10 per tf.function call, checkpoints every 50.
STEPS = 200
RUN = [f"--config={CONFIG}", *TINY, f"--config.num_train_steps={STEPS}",
       "--config.steps_per_loop=10", "--config.log_every_steps=10",
       "--config.eval_every_steps=20", "--config.checkpoint_every_steps=50",
       "--config.max_checkpoints_to_keep=5"]


def reference_config():
    from configs import mnist as mnist_configs

    config = mnist_configs.get_config("bn_mlp")
    for arg in RUN[1:]:
        path, value = arg[len("--config."):].split("=", 1)
        *parents, last = path.split(".")
        target = config
        for parent in parents:
            target = target[parent]
        target[last] = type(target[last])(value) if target[last] is not None else int(value)
    return config


def stop_after(process, step, signum):
    """Sends `signum` once `process` logs a training step >= `step`; returns
    its stderr after it exits."""
    lines = []
    for line in process.stderr:
        lines.append(line)
        match = re.search(r"\] step (\d+)/", line)
        if match and int(match.group(1)) >= step:
            process.send_signal(signum)
            break
    rest = process.communicate(timeout=300)[1]
    return "".join(lines) + rest


def tensorboard_steps(directory):
    from bn_zoo.training import summaries

    steps = {}
    for root, _, names in os.walk(directory):
        for name in sorted(names):
            for tag, points in summaries.read_scalars(os.path.join(root, name)).items():
                steps.setdefault(tag, []).extend(step for step, _ in points)
    return {tag: sorted(s) for tag, s in steps.items()}


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_preempted_run_resumes_to_the_uninterrupted_result(tmp_path, umask_022):
    from bn_zoo import training
    from bn_zoo import runs as workdir_lib

    # A run of another config killed before its first checkpoint: the next
    # run, of this config, starts afresh over its files.
    workdir = tmp_path / "run"
    killed = launch([*RUN, f"--workdir={workdir}", "--config.num_train_steps=100000",
                     "--config.checkpoint_every_steps=100000",
                     "--config.optimizer.base_learning_rate=0.1"])
    stop_after(killed, 10, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert not os.path.exists(workdir / "checkpoints" / "checkpoint")
    assert workdir_lib.read_csv(workdir / "metrics.csv")[0]["step"] == 0

    first = launch([*RUN, f"--workdir={workdir}"])
    reference = tmp_path / "reference"  # Meanwhile, uninterrupted, in this process.
    training.train(reference_config(), str(reference))
    err = stop_after(first, 60, signal.SIGTERM)
    assert first.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err
    last = err.rstrip().splitlines()[-1]
    match = re.fullmatch(rf"Stopped by SIGTERM at step (\d+) of {STEPS}: saved "
                         rf"({re.escape(str(workdir))}/checkpoints/ckpt-\d+)\. Rerun the "
                         r"same command to resume\.", last)
    assert match, err[-3000:]
    stopped = int(match.group(1))
    assert 60 <= stopped < STEPS and match.group(2).endswith(f"ckpt-{stopped}")
    for name in ("config.json", "metrics.csv", "checkpoints/checkpoint",
                 f"checkpoints/ckpt-{stopped}.index"):
        assert oct(os.stat(workdir / name).st_mode & 0o777) == "0o644", name

    # The newest checkpoint truncated: export and the resumed run use the one
    # before, and say so; the resumed run is stopped again, by SIGINT.
    truncated = workdir / "checkpoints" / f"ckpt-{stopped}.data-00000-of-00001"
    os.truncate(truncated, 100)
    older = 50 * (stopped // 50) if stopped % 50 else stopped - 50
    warning = (rf"Checkpoint {re.escape(str(workdir))}/checkpoints/ckpt-{stopped} "
               rf"\(ckpt-{stopped}\.data-00000-of-00001, ckpt-{stopped}\.index: IndexError: "
               rf"Read less bytes than requested\) cannot be read; using the older "
               rf"checkpoint {re.escape(str(workdir))}/checkpoints/ckpt-{older} instead\.")
    exported = launch([f"--workdir={workdir}", f"--export_dir={tmp_path / 'export'}"],
                      module="trainers.export")
    second = launch([*RUN, f"--workdir={workdir}"])
    err = stop_after(second, stopped + 20, signal.SIGINT)
    assert re.search(warning, err), err[-3000:]
    assert f"Resumed from {workdir}/checkpoints/ckpt-{older} at step {older}." in err
    assert second.returncode == 128 + signal.SIGINT, err[-3000:]
    assert re.fullmatch(rf"Stopped by SIGINT at step \d+ of {STEPS}: saved .*",
                        err.rstrip().splitlines()[-1]), err[-3000:]
    export_err = exported.communicate(timeout=300)[1]
    assert re.search(warning, export_err), export_err[-3000:]

    # The last rerun, to the end, in this process (as trainers.train's main).
    training.train(reference_config(), str(workdir))
    assert oct(os.stat(workdir / "final.json").st_mode & 0o777) == "0o644"

    assert_same_training_state(tf.train.latest_checkpoint(workdir / "checkpoints"),
                               tf.train.latest_checkpoint(reference / "checkpoints"))
    rows = workdir_lib.read_csv(workdir / "metrics.csv")
    reference_rows = workdir_lib.read_csv(reference / "metrics.csv")
    assert [r["step"] for r in rows] == list(range(0, STEPS + 1, 20))
    np.testing.assert_allclose([r["eval_loss"] for r in rows],
                               [r["eval_loss"] for r in reference_rows], rtol=1e-5)
    # The step-0 row's empty train cells stay empty through every rewrite.
    with open(workdir / "metrics.csv") as f:
        assert f.read().splitlines()[1].startswith("0,,,")
    steps = tensorboard_steps(workdir / "tensorboard")
    assert steps == tensorboard_steps(reference / "tensorboard")
    assert steps["train/loss"] == list(range(10, STEPS + 1, 10))


def test_a_full_disk_stops_with_one_line_and_no_temporary_checkpoint(tmpfs):
    disk = tmpfs("disk", "size=1m")  # Room for 2 checkpoints of 410 kB, not 3.
    if disk is None:
        pytest.skip("mounting a tmpfs needs root")
    process = launch([f"--config={CONFIG}", f"--workdir={disk / 'run'}", *TINY,
                      "--config.num_train_steps=40", "--config.steps_per_loop=10",
                      "--config.eval_every_steps=10", "--config.checkpoint_every_steps=10"])
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1, err[-3000:]
    line = error_line(err)
    assert re.fullmatch(
        rf"ERROR \(DiskFullError\): Could not write checkpoint {disk}/run/checkpoints/"
        r"ckpt-(\d+) \(No space left on device\); its temporary files were removed and the "
        r"newest checkpoint "
        rf"{disk}/run/checkpoints/ckpt-\d+ is kept\. Free some space and rerun the same "
        r"command to resume\.", line), line
    names = os.listdir(disk / "run" / "checkpoints")
    assert not [n for n in names if "_temp" in n], names
    assert "checkpoint" in names
