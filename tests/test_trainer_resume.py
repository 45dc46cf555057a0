"""Kill-and-resume: `python -m trainers.train` killed with SIGKILL
after a checkpoint, then rerun, ends with the same weights and metrics as an
uninterrupted run of the same length, with every evaluation step once.

The rerun calls training.train in this process, as the command's main does
(the command line's own rerun after SIGTERM and SIGINT:
tests/test_trainer_failures.py::test_preempted_run_resumes_to_the_uninterrupted_result)."""

import logging
import os
import re
import signal
import time

import numpy as np
import tensorflow as tf

import commands
from bn_zoo import runs, training
from configs import mnist as mnist_configs

STEPS, EVAL_EVERY, CHECKPOINT_EVERY = 600, 100, 200  # 6 epochs of the slice.
OVERRIDES = {
    "num_train_steps": STEPS,
    "steps_per_loop": EVAL_EVERY,
    "log_every_steps": EVAL_EVERY,
    "eval_every_steps": EVAL_EVERY,
    "checkpoint_every_steps": CHECKPOINT_EVERY,
    "max_checkpoints_to_keep": 2,
    "data.train_split": "train[:6000]",
    "eval_batch_size": 5000,
    "probe.num_examples": 100,
    "population_batches": 0,
}


def arguments(workdir):
    """The arguments of `python -m trainers.train` for this run in `workdir`."""
    return ["--config=" + commands.config_path("mnist", "bn_mlp"),
            "--workdir=" + workdir] + [f"--config.{k}={v}" for k, v in OVERRIDES.items()]


def config():
    c = mnist_configs.get_config("bn_mlp")
    for key, value in OVERRIDES.items():
        target = c
        *parents, last = key.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    return c


def model_variables(path):
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.startswith(("model/", "optimizer/")) and "OBJECT_GRAPH" not in name}


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, caplog):
    killed = str(tmp_path / "killed")
    log = open(tmp_path / "killed.log", "wb")
    process = commands.launch("trainers.train", arguments(killed), log=log, tf_log_level="2")
    state = os.path.join(killed, "checkpoints", "checkpoint")
    deadline = time.time() + 240
    while not os.path.exists(state) and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    log.close()
    assert process.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    interrupted_at = runs.latest_step(os.path.join(killed, "checkpoints"))
    assert interrupted_at is not None and interrupted_at < STEPS

    # As if the kill came after an evaluation but before its checkpoint: a
    # row past the checkpoint that the resumed run must replace, not repeat.
    metrics_path = os.path.join(killed, "metrics.csv")
    rows = runs.read_csv(metrics_path)
    stale = dict(rows[-1], step=interrupted_at + EVAL_EVERY, eval_accuracy=-1.0)
    runs.write_csv(metrics_path, rows + [stale], list(rows[0]))

    with caplog.at_level(logging.INFO, logger="absl"):
        training.train(config(), killed)  # The rerun.
    resumed = re.compile(rf"Resumed from {re.escape(killed)}/checkpoints/ckpt-{interrupted_at} "
                         rf"at step {interrupted_at}( of {STEPS})?\.")
    assert any(resumed.fullmatch(m) for m in caplog.messages), caplog.messages
    uninterrupted = str(tmp_path / "uninterrupted")
    training.train(config(), uninterrupted)

    resumed_rows = runs.read_csv(metrics_path)
    reference_rows = runs.read_csv(os.path.join(uninterrupted, "metrics.csv"))
    expected_steps = list(range(0, STEPS + 1, EVAL_EVERY))
    assert [r["step"] for r in resumed_rows] == expected_steps
    assert [r["step"] for r in reference_rows] == expected_steps
    np.testing.assert_allclose([r["eval_accuracy"] for r in resumed_rows],
                               [r["eval_accuracy"] for r in reference_rows], atol=2e-4)

    resumed = model_variables(tf.train.latest_checkpoint(os.path.join(killed, "checkpoints")))
    reference = model_variables(tf.train.latest_checkpoint(os.path.join(uninterrupted, "checkpoints")))
    assert resumed.keys() == reference.keys() and len(resumed) > 10
    for name in reference:
        np.testing.assert_allclose(resumed[name], reference[name], rtol=1e-4, atol=1e-5,
                                   err_msg=name)
