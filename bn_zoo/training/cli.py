"""Flags shared by the absl entry points in `trainers/`.

Importing this module defines the flags (once per process):

    --config=configs/<experiment>.py   ml_collections config file; its fields
                                       are overridden as --config.<field>=value
    --workdir=DIR                      the run's directory (resumes if it exists)
    --strategy=NAME                    overrides config.strategy
    --tpu=ADDRESS                      overrides config.tpu
    --data_dir=DIR                     overrides config.data.data_dir
"""

import sys

import ml_collections
from absl import flags, logging
from ml_collections import config_flags

from bn_zoo.training.config import STRATEGIES
from bn_zoo.training.errors import USER_ERRORS

CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Path to an ml_collections config file, e.g. configs/mnist_bn_mlp.py. Any of "
    "its fields can be overridden with --config.<field>=<value>, e.g. "
    "--config.num_train_steps=2000 or --config.optimizer.base_learning_rate=0.1; "
    "fields left at None come from the model's recipe in bn_zoo's registry.",
    lock_config=True,
)
WORKDIR = flags.DEFINE_string(
    "workdir", None,
    "Directory of the run: config.json, metrics.csv, final.json, checkpoints/ and "
    "tensorboard/. Rerunning the same command resumes from its newest checkpoint.")
STRATEGY = flags.DEFINE_enum(
    "strategy", None, STRATEGIES,
    "tf.distribute strategy; overrides config.strategy. multi_worker_mirrored reads "
    "the cluster from the TF_CONFIG environment variable.")
TPU = flags.DEFINE_string(
    "tpu", None,
    "TPU name or grpc:// address for --strategy=tpu ('' for a local TPU VM); "
    "overrides config.tpu.")
DATA_DIR = flags.DEFINE_string(
    "data_dir", None,
    "TensorFlow Datasets data directory holding the prepared data set; overrides "
    "config.data.data_dir. Default: $TFDS_DATA_DIR, else ~/tensorflow_datasets.")


def apply_overrides(config, data_field="data"):
    """A copy of `config` with --strategy, --tpu and --data_dir applied.

    `data_field` is the dotted path of the `data` sub-config (e.g.
    "train.data" in the Figure 1 config).
    """
    config = ml_collections.ConfigDict(config.to_dict())
    target = config
    for key in data_field.split(".")[:-1]:
        target = target[key]
    if STRATEGY.value is not None:
        target.strategy = STRATEGY.value
    if TPU.value is not None:
        target.tpu = TPU.value
    if DATA_DIR.value is not None:
        target[data_field.split(".")[-1]].data_dir = DATA_DIR.value
    return config


def parse_flags(argv):
    """absl's flag parsing, with an unknown --config.<field> reported as one
    line (ml_collections raises it as a bare AttributeError)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        print(f"ERROR (flags): {str(error).rstrip('.')}. Pass --helpfull to list the flags.",
              file=sys.stderr, flush=True)
        sys.exit(1)
    except (AttributeError, KeyError) as error:
        cause = error
        while cause is not None and not isinstance(cause, KeyError):
            cause = cause.__context__
        detail = str(cause.args[0] if cause is not None and cause.args else error)
        name = detail.split("\n")[0].strip("'\"")
        culprit = next((a.split("=")[0] for a in argv[1:]
                        if a.startswith("--config.") and name in a.split("=")[0]), name)
        hint = " ".join(detail.split("\n")[1:])
        print(f"ERROR (ConfigError): Unknown config field {culprit!r}. {hint} "
              "The fields are listed in bn_zoo/training/config.py.",
              file=sys.stderr, flush=True)
        sys.exit(1)


def set_up_logging():
    """INFO-level absl logging (progress lines) unless --verbosity was given."""
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.INFO)


def run(fn):
    """Calls `fn()`; a user error (bad config, incompatible workdir, missing
    data, diverged loss) becomes one message on stderr and exit code 1."""
    try:
        return fn()
    except USER_ERRORS as error:
        print(f"ERROR ({type(error).__name__}): {error}", file=sys.stderr, flush=True)
        sys.exit(1)
