"""A real signal to one worker of a 2-worker run (`multi_worker_mirrored`,
two local processes with `TF_CONFIG` on 127.0.0.1, one shared workdir that
the chief writes), on the MNIST BN MLP of configs/mnist.py:bn_mlp, tiny:

1. The chief SIGKILLed after its first checkpoint: the other worker does not
   hang but ends within seconds (TensorFlow aborts its collective ops) with
   exit code 1 and one ERROR line that names the lost worker and its
   address (`bn_zoo.training.cluster.lost_workers`), keeping that
   checkpoint.
2. Rerun: both resume from it; SIGTERM to the other worker alone stops both
   at the same step with exit code 143 and the one-line "Stopped by SIGTERM
   at step S" naming the chief's checkpoint ckpt-S, and leaves no temporary
   or scratch checkpoint files.
3. Rerun: both resume at S and finish with the weights and metrics.csv rows
   of an uninterrupted run computed meanwhile in this process with
   MirroredStrategy over 2 logical CPUs (tests/conftest.py): the same
   computation, as each global batch is split between the replicas alike
   (measured: weights within 3e-7 after 60 steps).

A SIGTERM to the process while it waits for its peer to connect is in
tests/test_trainer_failures.py; the lost-worker message of a non-chief
killed (heartbeats stopped) is checked below on TensorFlow's recorded text.
"""

import json
import os
import re
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

import commands
import config_flags
import local_cluster
from bn_zoo import runs, training
from bn_zoo.training import cluster
from configs import mnist
from training_state import assert_same_training_state

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

CONFIG = commands.config_path("mnist", "bn_mlp")
STEPS = 120
FLAGS = ["--config.data.train_split=train[:600]", "--config.data.eval_split=test[:300]",
         "--config.eval_batch_size=300", "--config.probe.num_examples=50",
         "--config.population_batches=0", f"--config.num_train_steps={STEPS}",
         "--config.steps_per_loop=5", "--config.log_every_steps=5",
         "--config.eval_every_steps=20", "--config.checkpoint_every_steps=20",
         "--config.max_checkpoints_to_keep=10"]
TIMEOUT = 300  # Seconds for anything to happen on a loaded 2-core machine.


class Workers:
    """The two workers of one cluster, their output in log files."""

    def __init__(self, workdir, logs):
        self.logs = [logs / f"worker_{i}.log" for i in range(2)]
        self.files = [open(path, "wb") for path in self.logs]
        envs = local_cluster.worker_environments(2)
        self.tf_configs = [env["TF_CONFIG"] for env in envs]
        self.addresses = json.loads(self.tf_configs[0])["cluster"]["worker"]
        self.processes = [
            commands.launch("trainers.train", [f"--config={CONFIG}", *FLAGS,
                                               f"--workdir={workdir}",
                                               "--strategy=multi_worker_mirrored"],
                            env=env, log=f)
            for env, f in zip(envs, self.files)]

    def output(self, index):
        return self.logs[index].read_text()

    def chief_step(self):
        """The last training step the chief logged (0: none yet)."""
        steps = re.findall(r"\] step (\d+)/", self.output(0))
        return int(steps[-1]) if steps else 0

    def wait_until(self, condition, what):
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            if any(p.poll() is not None for p in self.processes):
                pytest.fail(f"a worker ended while waiting for {what}:\n" + self.tails())
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {TIMEOUT} s:\n" + self.tails())
            time.sleep(0.02)

    def wait(self):
        """Waits for both to exit; returns their exit codes."""
        for process in self.processes:
            try:
                process.wait(timeout=TIMEOUT)
            except Exception:
                self.kill()
                raise
        for f in self.files:
            f.close()
        return [p.returncode for p in self.processes]

    def kill(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for f in self.files:
            f.close()

    def tails(self):
        return "\n".join(f"--- worker {i}:\n{self.output(i)[-3000:]}" for i in range(2))


@pytest.fixture
def start(tmp_path):
    started = []

    def start_workers(workdir, name):
        (tmp_path / name).mkdir()
        started.append(Workers(workdir, tmp_path / name))
        return started[-1]

    yield start_workers
    for workers in started:
        workers.kill()


def last_line(text):
    assert "Traceback" not in text, text[-3000:]
    return text.rstrip().splitlines()[-1]


def test_a_signal_to_one_worker_stops_both_and_they_resume(tmp_path, start):
    workdir = tmp_path / "run"
    checkpoints = workdir / "checkpoints"

    # 1. The chief killed after its first checkpoint: its peer ends, one line.
    first = start(workdir, "first")
    reference = tmp_path / "reference"  # Meanwhile, uninterrupted, in this process.
    config = config_flags.apply(mnist.get_config("bn_mlp"),
                                [*FLAGS, "--config.strategy=mirrored"])
    training.train(config, str(reference))
    # Past the checkpoint at 20: a kill during a save would leave its temporary
    # files (TensorFlow writes the `checkpoint` file twice per save).
    first.wait_until(lambda: first.chief_step() >= 25, "step 25")
    first.processes[0].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    codes = first.wait()
    assert codes == [-signal.SIGKILL, 1], first.tails()
    assert time.monotonic() - killed_at < 120, "the survivor took long to notice"
    line = last_line(first.output(1))
    lost = ("Lost contact with worker 0 of TF_CONFIG at " + first.addresses[0] + ": it "
            "stopped answering (killed, crashed or unreachable), so this worker stopped too. "
            "Restart every worker with the same command to resume from the newest checkpoint.")
    assert line == f"ERROR (ClusterError): {lost}", first.tails()
    resumed_at = runs.latest_step(checkpoints)
    assert resumed_at is not None and resumed_at % 20 == 0 and 0 < resumed_at < STEPS
    before = set(os.listdir(checkpoints))

    # 2. SIGTERM to the other worker only: both stop at one step, one line each.
    second = start(workdir, "second")
    signalled_after = resumed_at + 10

    second.wait_until(lambda: second.chief_step() >= signalled_after,
                      f"step {signalled_after}")
    second.processes[1].send_signal(signal.SIGTERM)
    codes = second.wait()
    assert codes == [128 + signal.SIGTERM] * 2, second.tails()
    stopped = []
    for index in range(2):
        output = second.output(index)
        assert f"Resumed from {checkpoints}/ckpt-{resumed_at} at step {resumed_at}." in output
        match = re.fullmatch(
            rf"(?:ERROR \(Preempted\): )?Stopped by SIGTERM at step (\d+) of {STEPS}: saved "
            rf"{re.escape(str(checkpoints))}/ckpt-(\d+)\. Rerun the same command to "
            r"resume\.", last_line(output))
        assert match and match.group(1) == match.group(2), second.tails()
        stopped.append(int(match.group(1)))
    assert stopped[0] == stopped[1] and signalled_after <= stopped[0] < STEPS, stopped
    stopped = stopped[0]
    assert runs.latest_step(checkpoints) == stopped
    # Only the chief's checkpoint files: no ckpt-S_temp, checkpoint.tmp... or
    # worker_1_scratch.
    saved = {*range(resumed_at + 20, stopped + 1, 20), stopped}  # Every 20, and S.
    added = set(os.listdir(checkpoints)) - before
    assert added == {f"ckpt-{step}.{suffix}" for step in saved
                     for suffix in ("index", "data-00000-of-00001")}, added
    assert not os.path.exists(workdir / "final.json")

    # 3. Rerun: both resume at that step and finish as the uninterrupted run.
    third = start(workdir, "third")
    assert third.wait() == [0, 0], third.tails()
    for index in range(2):
        assert (f"Resumed from {checkpoints}/ckpt-{stopped} at step {stopped}."
                in third.output(index)), third.tails()
    assert_same_training_state(checkpoints / f"ckpt-{STEPS}",
                               reference / "checkpoints" / f"ckpt-{STEPS}")
    rows = runs.read_csv(workdir / "metrics.csv")
    reference_rows = runs.read_csv(reference / "metrics.csv")
    assert [r["step"] for r in rows] == list(range(0, STEPS + 1, 20))
    assert [r.keys() for r in rows] == [r.keys() for r in reference_rows]
    for row, expected_row in zip(rows, reference_rows):
        # The first row after S averages the training steps since S only (the
        # trainer does not checkpoint its running sums); every other cell is
        # the uninterrupted run's.
        keys = [k for k in row if not (k.startswith("train_") and row["step"] - 20 < stopped
                                       < row["step"])]
        np.testing.assert_allclose([row[k] for k in keys], [expected_row[k] for k in keys],
                                   rtol=1e-5, atol=1e-6, err_msg=f"step {row['step']}: {keys}")


# TensorFlow's error on worker 0 when worker 1 was SIGKILLed (its heartbeats
# stopped), as the trainer printed it; TF_CONFIG as worker 0 saw it.
HEARTBEATS = (
    "{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_/job:worker/"
    "replica:0/task:0/device:CPU:0}} Collective ops is aborted by: Error reported from "
    "/job:worker/task:1: The following tasks are unhealthy (stopped sending heartbeats): "
    "/job:worker/replica:0/task:1 The tasks have crashed. Check the task logs for an earlier "
    "error, or scheduler events (e.g. preemption, eviction) to debug further. The error could "
    "be from a previous operation. Restart your program to reset. [Op:CollectiveReduceV2] name: ")
WORKER_0 = json.dumps({"cluster": {"worker": ["127.0.0.1:39253", "127.0.0.1:47747"]},
                       "task": {"type": "worker", "index": 0}})


def test_a_peer_whose_heartbeats_stopped_is_named(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", WORKER_0)
    with pytest.raises(training.ClusterError) as raised, cluster.lost_workers():
        raise tf.errors.UnavailableError(None, None, HEARTBEATS)
    assert str(raised.value).startswith(
        "Lost contact with worker 1 of TF_CONFIG at 127.0.0.1:47747: it stopped answering")


def test_other_unavailable_errors_pass_unchanged(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", WORKER_0)
    storage = tf.errors.UnavailableError(None, None, "Error executing an HTTP request: "
                                         "HTTP response code 503 for gs://bucket/run")
    with pytest.raises(tf.errors.UnavailableError) as raised, cluster.lost_workers():
        raise storage
    assert raised.value is storage
    monkeypatch.delenv("TF_CONFIG")  # One process: no peer to lose.
    with pytest.raises(tf.errors.UnavailableError), cluster.lost_workers():
        raise tf.errors.UnavailableError(None, None, HEARTBEATS)
