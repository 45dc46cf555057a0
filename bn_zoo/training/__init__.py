"""The trainer: a custom `tf.distribute` training loop driven by a config.

    from bn_zoo import training
    config = training.default_config()
    config.model.name = "bn_mlp"
    training.train(config, "/tmp/bn_mlp")       # resumable
    model = training.restore_model("/tmp/bn_mlp")

`python -m trainers.train --config=configs/<experiment>.py --workdir=DIR` is
the command-line face of `train`.
"""

from bn_zoo.training.checkpoints import restore_model
from bn_zoo.training.config import default_config, resolve
from bn_zoo.training.errors import (
    USER_ERRORS,
    ClusterError,
    ConfigError,
    DiskFullError,
    NonFiniteLossError,
    Preempted,
    TrainingError,
    WorkdirError,
)
from bn_zoo.training.trainer import train

__all__ = [
    "ClusterError",
    "ConfigError",
    "DiskFullError",
    "NonFiniteLossError",
    "Preempted",
    "TrainingError",
    "USER_ERRORS",
    "WorkdirError",
    "default_config",
    "resolve",
    "restore_model",
    "train",
]
