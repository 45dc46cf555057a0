"""One run at a time in a workdir (`run.lock`, `bn_zoo.runs.lock`).

The command of the report: `python -m trainers.train` started twice on one
workdir. The second is refused with one line naming the first's pid and host,
and leaves the first's files alone; the first, SIGKILLed, leaves a lock file
that blocks nothing: the next run takes it over, and removes it at its end.
In this process: the lock is an flock (a second open file in the same
process is refused too), workers other than the chief take none, and a run
that fails before its first checkpoint removes the directory it created,
lock file included.
"""

import json
import os
import re
import signal
import socket
import time

import pytest

import commands
import config_flags
from bn_zoo import runs, training
from bn_zoo.runs import lock as lock_lib
from configs import mnist as mnist_configs

TINY = ["--config.data.train_split=train[:600]", "--config.data.eval_split=test[:300]",
        "--config.eval_batch_size=300", "--config.probe.num_examples=50",
        "--config.population_batches=0", "--config.steps_per_loop=10",
        "--config.log_every_steps=10"]
# The first run: long, with nothing to resume from when it is killed.
LONG = ["--config.num_train_steps=100000", "--config.eval_every_steps=100000",
        "--config.checkpoint_every_steps=100000"]


def in_use(workdir, pid):
    """The refusal's message, the start time left as a pattern."""
    return (rf"--workdir={re.escape(str(workdir))} is in use by the run of pid {pid} on host "
            rf"{re.escape(socket.gethostname())} \(started \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d"
            r"[^)]*\)\. Wait for it to end, stop it, or use another --workdir\.")


def wait_for(condition, process, seconds=240):
    deadline = time.time() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a_second_run_is_refused_and_a_killed_runs_lock_blocks_nothing(tmp_path):
    workdir = tmp_path / "run"
    args = [f"--config={commands.config_path('mnist', 'bn_mlp')}", f"--workdir={workdir}",
            *TINY, *LONG]
    first = commands.launch("trainers.train", args)
    lock = workdir / runs.LOCK_FILE
    wait_for(lambda: lock_lib.holder(str(workdir)) is not None, first)
    record = json.loads(lock.read_text())
    assert record["pid"] == first.pid and record["host"] == socket.gethostname()
    assert abs(record["started"] - time.time()) < 300

    second = commands.run("trainers.train", args, timeout=300)
    assert second.returncode == 1, second.stderr[-3000:]
    assert "Traceback" not in second.stderr
    assert re.fullmatch(r"ERROR \(WorkdirError\): " + in_use(workdir, first.pid),
                        commands.error_line(second.stderr)), second.stderr[-3000:]
    # The first run goes on, with its own event file and lock.
    wait_for(lambda: os.path.isdir(workdir / "tensorboard"), first)
    assert first.poll() is None
    (events,) = os.listdir(workdir / "tensorboard")
    assert events.split(".")[-3] == str(first.pid), events
    assert json.loads(lock.read_text()) == record

    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    assert json.loads(lock.read_text()) == record  # Left behind: stale.

    # The next run takes the stale lock over (the kill released the flock);
    # the killed run had no checkpoint, so it starts afresh.
    config = config_flags.apply(mnist_configs.get_config("bn_mlp"),
                                [*TINY, "--config.num_train_steps=20"])
    final = training.train(config, str(workdir))
    assert final["step"] == 20
    assert not lock.exists()
    assert sorted(os.listdir(workdir)) == ["checkpoints", "config.json", "final.json",
                                           "labels.txt", "metrics.csv", "tensorboard"]


def test_the_lock_is_a_flock_held_by_the_chief_alone(tmp_path):
    workdir = tmp_path / "new" / "run"
    run = runs.RunDir(workdir)
    with run.lock() as held:
        assert held.held and os.path.isdir(workdir)
        # A second open file, even in this process, is refused by the flock.
        with pytest.raises(runs.WorkdirError) as refused:
            runs.RunDir(workdir).lock().acquire()
        assert re.fullmatch(in_use(workdir, os.getpid()), str(refused.value))
        # The other workers of a multi-worker run write nothing, lock nothing.
        with runs.RunDir(workdir, chief=False).lock() as other:
            assert not other.held
        assert lock_lib.holder(str(workdir))["pid"] == os.getpid()
        # A run that fails before its first checkpoint rolls back all but the lock...
        (workdir / "config.json").write_text("{}")
        run.roll_back(None)
        assert os.listdir(workdir) == [runs.LOCK_FILE]
    # ...which its holder removes, with the directory it created.
    assert not os.path.exists(workdir) and os.path.isdir(tmp_path / "new")

    # A lock file no process holds, whatever it holds, is taken over.
    workdir.mkdir()
    (workdir / runs.LOCK_FILE).write_text("not json")
    with run.lock():
        assert lock_lib.holder(str(workdir))["pid"] == os.getpid()
    assert os.listdir(workdir) == []
