"""`mirrored` over 2 logical CPUs (tests/conftest.py) with synchronized BN
trains the same network as the default strategy on the same global batch: each replica gets half of every global batch of 60, BN statistics
are all-reduced, the optimizer sums the gradients of loss / 60."""

import os

import numpy as np
import tensorflow as tf

from bn_zoo import training
from bn_zoo import runs as workdir_lib
from configs import mnist as mnist_configs

STEPS, EVERY = 200, 20


def run(workdir, strategy):
    config = mnist_configs.get_config("bn_mlp")
    config.strategy = strategy
    config.synchronized_batch_norm = True
    config.num_train_steps = STEPS
    config.steps_per_loop = config.log_every_steps = config.eval_every_steps = EVERY
    config.checkpoint_every_steps = STEPS
    config.data.train_split = "train[:6000]"
    config.eval_batch_size = 2000
    config.probe.num_examples = 100
    config.population_batches = 10
    final = training.train(config, workdir)
    return final, workdir_lib.read_csv(os.path.join(workdir, "metrics.csv"))


def test_mirrored_matches_default_on_the_same_global_batch(tmp_path):
    assert len(tf.config.list_logical_devices("CPU")) == 2
    default_final, default_rows = run(str(tmp_path / "default"), "default")
    mirrored_final, mirrored_rows = run(str(tmp_path / "mirrored"), "mirrored")
    assert [r["step"] for r in mirrored_rows] == list(range(0, STEPS + 1, EVERY))
    # The loss curve: mean training loss of every 20-step interval.
    np.testing.assert_allclose([r["train_loss"] for r in mirrored_rows[1:]],
                               [r["train_loss"] for r in default_rows[1:]], rtol=1e-4)
    np.testing.assert_allclose([r["eval_loss"] for r in mirrored_rows],
                               [r["eval_loss"] for r in default_rows], rtol=1e-4)
    assert abs(mirrored_final["eval_accuracy_population"]
               - default_final["eval_accuracy_population"]) <= 2e-3
    # Training moved far from the start, so agreement is not trivial.
    assert default_rows[-1]["train_loss"] < 0.5 * default_rows[1]["train_loss"]
    a = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "default" / "checkpoints")))
    b = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "mirrored" / "checkpoints")))
    names = [n for n in a.get_variable_to_shape_map() if n.startswith(("model/", "optimizer/"))]
    assert names
    for name in names:
        np.testing.assert_allclose(b.get_tensor(name), a.get_tensor(name), rtol=1e-3, atol=1e-4,
                                   err_msg=name)
