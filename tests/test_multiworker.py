"""`multi_worker_mirrored` as two local processes (TF_CONFIG on 127.0.0.1),
killed with SIGKILL after a checkpoint and restarted.

The two workers train a small convnet with our BN (tests/tiny_convnet.py,
named by import path: the subject here is the strategy, the checkpoints and
the evaluation, and it traces in seconds where the tiny Inception takes a
minute per worker) through configs/imagenet.py:bn_x5 on the generated JPEG
TFRecords of tests/imagenet_training_helpers.py, each reading its own shards,
with synchronized BN (statistics over both workers' batches). Killed together
after the chief's first checkpoint and restarted with the same command, both
resume at that checkpoint's step and finish the run; only the chief writes
the workdir (the other worker's checkpoint copy goes to a scratch directory
that is removed). The loss decreases, and the restored model evaluates on the
validation split, counted in numpy, to the accuracy the distributed
evaluation logged: every validation image counted once across the workers,
with a partial last batch.
"""

import json
import os
import re
import signal
import time

import pytest

import commands
import imagenet_training_helpers as helpers
import local_cluster
from bn_zoo import runs, training

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

STEPS = 40


def start_workers(workdir, fields, logs):
    processes = []
    environments = local_cluster.worker_environments(
        len(logs), PYTHONPATH=os.pathsep.join([commands.TESTS, commands.ROOT]))
    for env, log in zip(environments, logs):
        processes.append(helpers.launch(
            helpers.command(None, workdir, fields, "--strategy=multi_worker_mirrored",
                            config_file=os.path.join(commands.TESTS, "tiny_convnet.py")),
            env=env, log=log))
    return processes


def read(path):
    with open(path) as f:
        return f.read()


def test_two_workers_train_survive_a_kill_and_resume(tmp_path):
    data = helpers.write_data(tmp_path / "data")
    workdir = str(tmp_path / "run")
    fields = helpers.overrides(data, num_train_steps=STEPS, synchronized_batch_norm=True)
    del fields["model.kwargs.depth_multiplier"]
    logs = [open(tmp_path / f"first_{i}.log", "w") for i in range(2)]
    first = start_workers(workdir, fields, logs)
    state = os.path.join(workdir, "checkpoints", "checkpoint")
    deadline = time.time() + 400
    while (not os.path.exists(state) and time.time() < deadline
           and all(p.poll() is None for p in first)):
        time.sleep(0.02)
    for process in first:
        process.send_signal(signal.SIGKILL)
    for process, log in zip(first, logs):
        process.wait()
        log.close()
    assert [p.returncode for p in first] == [-signal.SIGKILL] * 2, read(tmp_path / "first_0.log")
    killed_at = runs.latest_step(os.path.join(workdir, "checkpoints"))
    assert killed_at is not None and 0 < killed_at < STEPS
    assert not os.path.exists(os.path.join(workdir, "final.json"))

    logs = [open(tmp_path / f"second_{i}.log", "w") for i in range(2)]
    second = start_workers(workdir, fields, logs)
    for process, log in zip(second, logs):
        process.wait(timeout=400)
        log.close()
    texts = [read(tmp_path / f"second_{i}.log") for i in range(2)]
    assert [p.returncode for p in second] == [0, 0], texts[0][-3000:] + texts[1][-3000:]
    for text in texts:
        resumed = rf"Resumed from \S+ckpt-{killed_at} at step {killed_at}( of {STEPS})?\."
        assert re.search(resumed, text), text[-3000:]
        # MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy.
        assert re.search(r"(MultiWorkerMirrored|CollectiveAllReduce)Strategy \(2 replica", text)

    rows = runs.read_csv(os.path.join(workdir, "metrics.csv"))
    assert [r["step"] for r in rows] == list(range(0, STEPS + 1, helpers.EVERY))
    assert rows[-1]["train_loss"] < rows[1]["train_loss"]
    # Only the chief's checkpoints: the other worker's scratch copy is gone.
    names = os.listdir(os.path.join(workdir, "checkpoints"))
    assert {n for n in names if not n.startswith("ckpt-")} == {"checkpoint"}, names
    assert runs.latest_step(os.path.join(workdir, "checkpoints")) == STEPS

    with open(os.path.join(workdir, "config.json")) as f:
        saved = json.load(f)
    assert saved["synchronized_batch_norm"] is True
    assert saved["model"]["name"] == "tiny_convnet:build"
    model = training.restore_model(workdir, classifier_activation=None)
    top1, top5, count = helpers.reference_evaluation(model, helpers.pipeline_config(workdir))
    assert count == helpers.NUM_VALIDATION
    assert rows[-1]["eval_accuracy"] == pytest.approx(top1, abs=1e-6)
    assert rows[-1]["eval_top5_accuracy"] == pytest.approx(top5, abs=1e-6)

