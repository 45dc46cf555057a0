"""Flags shared by the absl entry points in `trainers/`.

Importing this module defines the flags (once per process):

    --config=configs/<experiment>.py   ml_collections config file; its fields
                                       are overridden as --config.<field>=value
    --workdir=DIR                      the run's directory (resumes if it exists)
    --strategy=NAME                    overrides config.strategy
    --tpu=ADDRESS                      overrides config.tpu
    --data_dir=DIR                     overrides config.data.data_dir
    --cluster_timeout=SECONDS          deadline to reach the TPU or the
                                       TF_CONFIG workers (default 300)
    --print_config                     prints the resolved config (every field,
                                       its value, origin, default and meaning)
                                       and exits; --workdir is not needed

Entry points call `require_flags()` before `app.run` and adopt these flags
as key flags (`flags.adopt_module_key_flags(cli)`), so `--help` lists them.
"""

import os
import re
import sys
import traceback

import ml_collections
from absl import flags
from ml_collections import config_flags

from bn_zoo.training.config import STRATEGIES
from bn_zoo.training.errors import USER_ERRORS, Preempted
from bn_zoo.training.strategy import DEFAULT_CONNECT_TIMEOUT
from bn_zoo.training.workdir import WRITE_ERRORS

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
    "TPU for --strategy=tpu: a Cloud TPU's name, grpc://HOST:PORT, or 'local' (or '') "
    "on a TPU VM; overrides config.tpu.")
CLUSTER_TIMEOUT = flags.DEFINE_float(
    "cluster_timeout", DEFAULT_CONNECT_TIMEOUT,
    "Seconds to wait for the TPU (--strategy=tpu) or for every worker of TF_CONFIG "
    "(--strategy=multi_worker_mirrored) to answer; past it the command exits with an "
    "error naming the addresses that did not answer. 0: wait forever.", lower_bound=0)
DATA_DIR = flags.DEFINE_string(
    "data_dir", None,
    "TensorFlow Datasets data directory holding the prepared data set; overrides "
    "config.data.data_dir. Default: $TFDS_DATA_DIR, else ~/tensorflow_datasets. "
    "Nothing is downloaded: a data set missing there is an error.")
PRINT_CONFIG = flags.DEFINE_boolean(
    "print_config", False,
    "Print every field of the resolved config (after the --config.* overrides, with "
    "the fields left at None filled from the model's recipe): its value, where the "
    "value comes from, its default and its meaning; then exit without touching "
    "--workdir (which may be left out).")


def require_flags():
    """--config is required; --workdir too, unless --print_config."""
    flags.mark_flag_as_required("config")
    flags.register_multi_flags_validator(
        ["workdir", "print_config"],
        lambda values: values["workdir"] is not None or values["print_config"],
        message="--workdir is required (the run's directory), unless --print_config.")


def overridden_fields(data_field="data"):
    """Dotted config paths set on the command line: --config.<field>=... and
    the fields --strategy, --tpu and --data_dir override."""
    paths = set(config_flags.get_override_values(flags.FLAGS["config"]))
    parent = data_field.rpartition(".")[0]
    parent = parent + "." if parent else ""
    if STRATEGY.value is not None:
        paths.add(parent + "strategy")
    if TPU.value is not None:
        paths.add(parent + "tpu")
    if DATA_DIR.value is not None:
        paths.add(data_field + ".data_dir")
    return paths


def config_filename():
    """The path given to --config."""
    return config_flags.get_config_filename(flags.FLAGS["config"])


def loaded(config):
    """`config` (the --config flag's value), or one ERROR line and exit 1 if
    its file is missing or does not parse (ml_collections loads it lazily)."""
    try:
        config.to_dict()
        return config
    except SyntaxError as error:
        _fail(error, "ConfigError", f"The config file {error.filename} has a syntax error "
              f"at line {error.lineno}: {error.msg}. Fix that line.")
    except OSError as error:
        name = config_filename()
        if os.path.isfile(name):
            raise
        _fail(error, "ConfigError", f"The config file {name!r} does not exist (looked in "
              f"{os.getcwd()}). Pass --config=configs/<experiment>.py, e.g. "
              "--config=configs/mnist_bn_mlp.py.")


def apply_overrides(config, data_field="data"):
    """A copy of `config` with --strategy, --tpu and --data_dir applied.

    `data_field` is the dotted path of the `data` sub-config (e.g.
    "train.data" in the Figure 1 config).
    """
    config = ml_collections.ConfigDict(loaded(config).to_dict())
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
    except SyntaxError as error:
        _fail(error, "ConfigError", f"The config file {error.filename} has a syntax error "
              f"at line {error.lineno}: {error.msg}. Fix that line.", argv)
    except flags.Error as error:
        print(f"ERROR (flags): {str(error).rstrip('.')}. --help lists the flags.",
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
        hint = " ".join(detail.split("\n")[1:]).strip()
        hint = f"{hint} " if hint else ""
        print(f"ERROR (ConfigError): Unknown config field {culprit!r}. {hint}"
              "--config=FILE --print_config lists the fields with their meaning.",
              file=sys.stderr, flush=True)
        sys.exit(1)


def _verbose(argv=None):
    """Whether the command line has absl's --verbosity (or -v)."""
    args = (sys.argv if argv is None else argv)[1:]
    return any(re.fullmatch(r"--?(?:verbosity|v)(?:=.*)?", a) for a in args)


def _fail(error, kind, message, argv=None, exit_code=1):
    """Prints `ERROR (kind): message` (after the traceback, with
    --verbosity) and exits."""
    if _verbose(argv):
        traceback.print_exception(error)
    print(f"ERROR ({kind}): {message}", file=sys.stderr, flush=True)
    sys.exit(exit_code)


def run(fn):
    """Calls `fn()`; a user error (bad config, incompatible workdir, missing
    data, diverged loss, a full or read-only disk) becomes one message on
    stderr and exit code 1 (a preempted run: 128 + the signal number), with
    the traceback before it only under --verbosity."""
    try:
        return fn()
    except Preempted as error:
        print(f"{error}", file=sys.stderr, flush=True)
        sys.exit(error.exit_code)
    except USER_ERRORS as error:
        _fail(error, type(error).__name__, str(error))
    except OSError as error:
        if error.errno not in WRITE_ERRORS:
            raise
        where = f" {error.filename}" if error.filename else ""
        _fail(error, type(error).__name__,
              f"Cannot write{where}: {error.strerror}. Nothing more was written; "
              f"{WRITE_ERRORS[error.errno]} and rerun.")
    except KeyboardInterrupt as error:
        _fail(error, "KeyboardInterrupt", "Interrupted without saving (before training "
              "started, or a second Ctrl-C). Rerun the same command to resume from the "
              "newest checkpoint, if any.", exit_code=130)
