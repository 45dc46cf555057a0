"""BN-Inception trains `mirrored` on 2 logical CPUs with
`synchronized_batch_norm=True` end to end (issue 13): a tiny BN-Inception
(depth 0.1, 32x32, 8 classes) on generated JPEG TFRecords, `python -m
trainers.train` run for 10 steps with a checkpoint, then rerun to 20 steps,
resuming from that checkpoint. Every evaluation step is logged once, the
loss goes down, and the restored model's numpy evaluation on the validation
split matches the accuracy the trainer logged."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

import imagenet_training_helpers as helpers
from bn_zoo import training
from bn_zoo.training import workdir as workdir_lib


def run(workdir, fields, log_path):
    with open(log_path, "w") as log:
        process = helpers.launch(
            helpers.command("bn_inception", workdir, fields, "--strategy=mirrored"), log=log)
        process.wait(timeout=900)
    text = open(log_path).read()
    assert process.returncode == 0, text[-3000:]
    return text


def test_bn_inception_trains_mirrored_with_synchronized_bn_and_resumes(tmp_path):
    data = helpers.write_data(tmp_path / "data")
    workdir = str(tmp_path / "run")
    fields = helpers.overrides(data, synchronized_batch_norm=True, num_cpu_devices=2,
                               num_train_steps=10, population_batches=0)
    first = run(workdir, fields, tmp_path / "first.log")
    assert re.search(r"MirroredStrategy \(2 replica", first), first[-3000:]
    fields["num_train_steps"] = 20
    second = run(workdir, fields, tmp_path / "second.log")
    assert re.search(r"Resumed from \S+ckpt-10 at step 10\.", second), second[-3000:]

    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["synchronized_batch_norm"] is True
    rows = workdir_lib.read_csv(os.path.join(workdir, "metrics.csv"))
    assert [r["step"] for r in rows] == [0, 10, 20]
    assert np.isfinite(rows[-1]["train_loss"]) and rows[-1]["train_loss"] < rows[1]["train_loss"]
    checkpoint = tf.train.load_checkpoint(tf.train.latest_checkpoint(
        os.path.join(workdir, "checkpoints")))
    variances = [checkpoint.get_tensor(n) for n in checkpoint.get_variable_to_shape_map()
                 if n.startswith("model/") and "moving_variance" in n]
    assert variances and all(np.all(np.isfinite(v)) and np.all(v > 0) for v in variances)
    assert not all(np.allclose(v, 1.0) for v in variances)  # the statistics moved

    model = training.restore_model(workdir, classifier_activation=None)
    top1, top5, count = helpers.reference_evaluation(model, helpers.pipeline_config(workdir))
    assert count == helpers.NUM_VALIDATION
    assert rows[-1]["eval_accuracy"] == pytest.approx(top1, abs=1e-6)
    assert rows[-1]["eval_top5_accuracy"] == pytest.approx(top5, abs=1e-6)
