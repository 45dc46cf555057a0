r"""Fine-tuning speed: bn_zoo's trainer beside a plain `keras.Model.fit`.

    python benchmarks/finetune_vs_fit.py [--steps=100] [--directory=photos] \
        [--depth_multiplier=0.25] [--image_size=96] [--batch=32]

Both train the same network, BN-Inception (`bn_inception`, width and input
size from the flags) with a 4-way head, on the same data: the
`image_folder` source of `configs/finetune.py` (random crops and flips,
`preprocess_input`), read from `--directory` or, without it, from JPEG
crops of scikit-image's photos written to a temporary folder (4 classes x
60). Same optimizer and schedule (the recipe's SGD with momentum, warm-up
and cosine decay), same label-smoothed loss, in one process, each phase
timed apart:

- frozen: the backbone frozen (`trainable=False`, BN in inference mode),
  only the head trains;
- unfrozen: every layer trains.

ours: `bn_zoo.training.train` with `model.freeze_steps` = --steps and
2 x --steps steps in all, `steps_per_loop` = --steps / 2: the rate of the
second half of each phase, as its TensorBoard `train/steps_per_second`
reports it (the first half includes tracing). fit: `model.compile(...)`,
then `fit` for two epochs of --steps / 2 steps per phase, the second epoch
timed; with Keras' default `steps_per_execution=1` and with
`steps_per_execution` = --steps / 2 (many steps per call, as ours).
"""

import argparse
import functools
import os
import sys
import tempfile
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402

from bn_zoo import training  # noqa: E402
from bn_zoo.models import preprocess_input  # noqa: E402
from bn_zoo.training import freezing, inputs, modeling, optimizers, summaries  # noqa: E402
from bn_zoo.configs import finetune  # noqa: E402 - configs/ as installed

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def write_photos(root, per_class=60, seed=0):
    """4 classes of JPEG crops of scikit-image's photos under `root`."""
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in PHOTOS:
        image = getattr(skimage.data, name)()[..., :3]
        height, width = image.shape[:2]
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            rows = int(rng.integers(height // 4, height // 2))
            columns = int(rng.integers(width // 4, width // 2))
            top = int(rng.integers(0, height - rows))
            left = int(rng.integers(0, width - columns))
            Image.fromarray(image[top:top + rows, left:left + columns]).save(
                os.path.join(root, name, f"{i:03d}.jpg"), quality=90)


def make_config(args, directory):
    config = finetune.get_config()
    config.data.directory = directory
    config.model.kwargs.input_shape = (args.image_size, args.image_size, 3)
    config.model.kwargs.depth_multiplier = args.depth_multiplier
    config.global_batch_size = args.batch
    config.num_train_steps = 2 * args.steps
    config.model.freeze_steps = args.steps
    config.steps_per_loop = config.log_every_steps = args.steps // 2
    config.eval_every_steps = config.checkpoint_every_steps = 2 * args.steps
    config.schedule.warmup_steps = args.steps // 10
    config.population_batches = 0
    return config


def ours(config, steps):
    with tempfile.TemporaryDirectory() as workdir:
        training.train(config, workdir)
        rates = {}
        for root, _, names in os.walk(os.path.join(workdir, "tensorboard")):
            for name in names:
                points = summaries.read_scalars(os.path.join(root, name)).get(
                    "train/steps_per_second", [])
                rates.update(dict(points))
    return rates[steps], rates[2 * steps]


class _EpochTimes(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self._start


def fit(config, steps, steps_per_execution):
    """(frozen, unfrozen) steps/s of model.fit on the trainer's data."""
    config = training.resolve(config)
    preprocess = functools.partial(preprocess_input, mode=modeling.preprocessing_mode(config))
    data = inputs.create(config.data, preprocess, config.model)
    config.model.kwargs["classes"] = data.num_classes
    keras.utils.set_random_seed(config.seed)
    model = modeling.create_model(config)
    schedule = freezing.Schedule(model, "backbone", steps)
    classes = data.num_classes
    dataset = data.train_dataset_fn(config.global_batch_size, config.seed, 0)(None).map(
        lambda images, labels: (images, keras.ops.one_hot(labels, classes)))
    half = steps // 2
    rates = []
    for frozen in (True, False):
        schedule.apply(frozen)
        model.compile(
            optimizer=optimizers.create_optimizer(config),
            loss=keras.losses.CategoricalCrossentropy(
                from_logits=True, label_smoothing=config.label_smoothing),
            steps_per_execution=steps_per_execution)
        times = _EpochTimes()
        model.fit(dataset, steps_per_epoch=half, epochs=2, verbose=0, callbacks=[times])
        rates.append(half / times.seconds)
    return tuple(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per phase")
    parser.add_argument("--directory", default=None, help="a folder of photos, one "
                        "subfolder per class (default: skimage crops, 4 x 60)")
    parser.add_argument("--depth_multiplier", type=float, default=0.25)
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    print(machine.describe())
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.directory
        if directory is None:
            directory = os.path.join(scratch, "photos")
            write_photos(directory)
        print(f"bn_inception, depth {args.depth_multiplier}, {args.image_size}x"
              f"{args.image_size}, batch {args.batch}, {directory}: {args.steps} steps per "
              "phase, the second half timed", flush=True)
        mine = ours(make_config(args, directory), args.steps)
        default = fit(make_config(args, directory), args.steps, 1)
        looped = fit(make_config(args, directory), args.steps, args.steps // 2)
    print(f"{'phase':9} {'ours':>8} {'fit':>8} {'fit spe=' + str(args.steps // 2):>12} "
          f"{'ours/fit':>9} {'ours/fit spe':>13}   (steps/s)")
    for i, phase in enumerate(("frozen", "unfrozen")):
        print(f"{phase:9} {mine[i]:8.2f} {default[i]:8.2f} {looped[i]:12.2f} "
              f"{mine[i] / default[i]:8.2f}x {mine[i] / looped[i]:12.2f}x", flush=True)
    print(machine.describe())


if __name__ == "__main__":
    main()
