"""Shared set-up of the issue-5 trainer tests: a tiny ImageNet-layout data set
of real JPEG TFRecords, a tiny Inception config and a numpy reference of the
evaluation."""

import os

import numpy as np

import commands
import config_flags
from bn_zoo.data import imagenet, tfrecords

NUM_CLASSES = 8
IMAGE_SIZE = 32
NUM_TRAIN, NUM_VALIDATION = 96, 25  # 25: the last evaluation batch is partial.
STEPS, EVERY = 30, 10


def write_data(directory, **kwargs):
    """A learnable 8-class data set: 4 training and 2 validation shards."""
    options = dict(num_train=NUM_TRAIN, num_validation=NUM_VALIDATION,
                   num_classes=NUM_CLASSES, image_size=(40, 40), num_train_shards=4,
                   num_validation_shards=2, seed=0)
    options.update(kwargs)
    tfrecords.write_synthetic_imagenet(str(directory), **options)
    return str(directory)


def overrides(data_dir, **extra):
    """Dotted config fields that shrink configs/imagenet.py:<model> to a
    30-step run of a 0.1-depth Inception on 32x32 images."""
    values = {
        "data.source": "tfrecord",
        "data.data_dir": None if data_dir is None else str(data_dir),
        "data.num_classes": NUM_CLASSES,
        "data.image_size": IMAGE_SIZE,
        "data.shuffle_buffer_size": 64,
        "data.cycle_length": 4,
        "model.kwargs.input_shape": (IMAGE_SIZE, IMAGE_SIZE, 3),
        "model.kwargs.depth_multiplier": 0.1,
        "model.kwargs.batch_norm_kwargs.momentum": 0.9,  # Moving averages that keep up.
        "global_batch_size": 8,
        "eval_batch_size": 8,
        "num_train_steps": STEPS,
        "steps_per_loop": EVERY,
        "log_every_steps": EVERY,
        "eval_every_steps": EVERY,
        "checkpoint_every_steps": EVERY,
        "optimizer.base_learning_rate": 0.04,  # x 8/32: 0.01 at batch 8.
    }
    values.update(extra)
    return values


def config(model="bn_x5", **fields):
    """configs/imagenet.py:<model> with dotted `fields` set; `model=None`:
    tests/tiny_convnet.py's config (no `depth_multiplier` field)."""
    import importlib

    if model:
        c = importlib.import_module("configs.imagenet").get_config(model)
    else:
        c = importlib.import_module("tiny_convnet").get_config()
    if model is None:
        fields.pop("model.kwargs.depth_multiplier", None)
    for key, value in fields.items():
        config_flags.set_field(c, key, value)
    return c


def flags(fields):
    """`fields` as --config.<field>=value flags."""
    out = []
    for key, value in fields.items():
        if isinstance(value, tuple):
            value = "(" + ",".join(str(v) for v in value) + ")"
        out.append(f"--config.{key}={value}")
    return out


def command(model, workdir, fields, *extra, config_file=None):
    """The arguments of `python -m trainers.train` (for `launch`) with
    configs/imagenet.py:<model>, or `config_file`, and `fields` as flags."""
    config_file = config_file or commands.config_path("imagenet", model)
    return [f"--config={config_file}", f"--workdir={workdir}", *flags(fields), *extra]


def launch(args, env=None, log=None):
    """`python -m trainers.train args...` (args from `command`) started by
    `commands.launch`: pipes, or stdout and stderr into the file `log`."""
    return commands.launch("trainers.train", args, env=env or None, log=log)


def reference_evaluation(model, data_config, batch_size=8):
    """Top-1 and top-5 accuracy of a Keras model on the validation split,
    counted in numpy from its logits (independent of the trainer's loop)."""
    labels, logits = [], []
    for images, batch_labels in imagenet.build_dataset(data_config, batch_size, training=False):
        logits.append(np.asarray(model(images, training=False)))
        labels.append(batch_labels.numpy())
    labels, logits = np.concatenate(labels), np.concatenate(logits)
    ranked = np.argsort(-logits, axis=1)
    top1 = float(np.mean(ranked[:, 0] == labels))
    top5 = float(np.mean([label in row[:5] for label, row in zip(labels, ranked)]))
    return top1, top5, len(labels)



def pipeline_config(workdir):
    """The `bn_zoo.data.imagenet` config of a finished run's config.json."""
    import json

    from bn_zoo import training
    from bn_zoo.data import imagenet

    with open(os.path.join(workdir, "config.json")) as f:
        saved = training.resolve(json.load(f))
    return imagenet.pipeline_config(saved.data)
