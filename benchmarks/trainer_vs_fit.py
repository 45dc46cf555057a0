r"""Training speed: bn_zoo's trainer beside a plain `keras.Model.fit`.

    TFDS_DATA_DIR=../shared/tensorflow_datasets python benchmarks/trainer_vs_fit.py [--steps=5000]

For each MNIST network of Section 4.1 (without and with BN) both run the same
model, optimizer (the registry recipe) and data pipeline (global batches of
60 from `bn_zoo.data.mnist`) for the same number of steps, in one process:

- ours: `bn_zoo.training.train` (many steps per tf.function call), timed over
  the training loop only (tracing included, no evaluation or checkpoint in
  between), as reported in its TensorBoard `train/steps_per_second`;
- fit: `model.compile(...)` then `model.fit(dataset, steps_per_epoch=steps)`
  with the defaults (steps_per_execution=1), timed around `fit`.
"""

import argparse
import functools
import os
import tempfile
import time

import keras

from bn_zoo import training
from bn_zoo.data import mnist
from bn_zoo.models import preprocess_input
from bn_zoo.training import modeling, optimizers, summaries
from configs import mnist as mnist_configs
import machine  # benchmarks/, the script's directory


def ours(config, steps):
    config.num_train_steps = steps
    config.steps_per_loop = 1000
    config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = steps
    config.probe.layer = ""
    config.population_batches = 0
    with tempfile.TemporaryDirectory() as workdir:
        training.train(config, workdir)
        events = os.path.join(workdir, "tensorboard")
        scalars = summaries.read_scalars(os.path.join(events, os.listdir(events)[0]))
    return scalars["train/steps_per_second"][-1][1]


def fit(config, steps):
    config = training.resolve(config)
    keras.utils.set_random_seed(config.seed)
    model = modeling.create_model(config)
    model.compile(
        optimizer=optimizers.create_optimizer(config),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    preprocess = functools.partial(preprocess_input, mode=modeling.preprocessing_mode(config))
    data = mnist.MNIST(data_dir=config.data.data_dir, preprocess=preprocess)
    dataset = data.train_dataset(config.global_batch_size, config.seed)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5000, help="training steps per run")
    args = parser.parse_args()
    print(machine.describe())
    print(f"{'network':8} {'ours steps/s':>13} {'fit steps/s':>12} {'ratio':>6}   ({args.steps:,} steps each)")
    for name in ("mlp", "bn_mlp"):
        theirs = fit(mnist_configs.mnist_config(name), args.steps)
        mine = ours(mnist_configs.mnist_config(name), args.steps)
        print(f"{name:8} {mine:13.0f} {theirs:12.0f} {mine / theirs:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
