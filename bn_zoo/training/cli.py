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

import difflib
import importlib.util
import os
import re

import ml_collections
from absl import flags
from ml_collections import config_flags

# Light modules only (`--help` answers before TensorFlow is imported): the
# trainer's errors, the config's checks and the workdir are imported where
# they are used.
from bn_zoo.training import console
from bn_zoo.training.choices import DEFAULT_CONNECT_TIMEOUT, STRATEGIES

CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Path to an ml_collections config file, e.g. configs/figure1.py, with its variant "
    "after a colon where it has variants, e.g. configs/mnist.py:bn_mlp. Any of "
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
              "--config=configs/mnist.py:bn_mlp.")


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
    """absl's flag parsing; any bad flag is one line `ERROR (Kind): ...` and
    exit status 1: a config file that became a variant (its new spelling),
    one that does not load or has no `get_config`, an unknown
    --config.<field> (named as typed, with the nearest field), and absl's
    own flag errors."""
    from bn_zoo.training.config_files import with_config_path
    from bn_zoo.training.config_paths import refuse_replaced_config

    argv = with_config_path(argv)  # --config=figure1: bn_zoo's config file of that name.
    refuse_replaced_config(argv)  # A config file that became a variant: its new spelling.
    try:
        return flags.FLAGS(argv)
    except SyntaxError as error:
        _fail(error, "ConfigError", f"The config file {error.filename} has a syntax error "
              f"at line {error.lineno}: {error.msg}. Fix that line.", argv)
    except flags.Error as error:
        _fail(error, type(error).__name__, console.flag_error_message(error), argv)
    except (AttributeError, KeyError) as error:
        _fail(error, "ConfigError", _config_error_message(argv, error), argv)


def _config_error_message(argv, error):
    """The message for an AttributeError/KeyError ml_collections raised while
    it loaded --config and applied the --config.<field> overrides of `argv`."""
    value = _config_argument(argv) or ""
    path = value.partition(":")[0]
    if "has no attribute 'get_config'" in str(error):
        return (f"The config file {path} has no get_config() function. A config file "
                "defines get_config() returning an ml_collections.ConfigDict, e.g. "
                "configs/mnist.py; pass one with --config=FILE.")
    try:
        fields = _field_paths(_load_config(value))
    except Exception:  # noqa: BLE001 - then the error's own words are all there is.
        fields = None
    for arg in argv[1:]:
        if arg == "--":
            break
        match = re.match(r"--?(?:no)?config\.([^=]+)", arg)
        if match is None or fields is None or match.group(1) in fields:
            continue
        field = match.group(1)
        flag = f"--config.{field}"
        message = f"Unknown config field {flag} (in {arg!r})."
        parent, _, leaf = field.rpartition(".")
        if parent and parent not in fields:  # Compare whole paths of the same depth.
            same_depth = sorted(f for f in fields if f.count(".") == field.count("."))
            nearest = difflib.get_close_matches(field, same_depth, n=1, cutoff=0.6)
        else:  # Compare the names beside it.
            siblings = sorted(f.rpartition(".")[2] for f in fields
                              if f.rpartition(".")[0] == parent)
            nearest = [f"{parent}.{name}" if parent else name
                       for name in difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)]
        if nearest:
            message += f" Did you mean --config.{nearest[0]}?"
        elif parent in fields:
            message += f" config.{parent} has the fields {', '.join(siblings)}."
        return (f"{message} --config={value} --print_config lists the fields with "
                "their meaning.")
    detail = console._message(error)  # No override to blame: ml_collections' words.
    return f"{detail}. --config=FILE --print_config lists the fields with their meaning."


def _load_config(value):
    """The config of --config=`value` ("FILE" or "FILE:ARG"), loaded as
    ml_collections does: FILE's get_config(), with ARG if given."""
    path, colon, arg = value.partition(":")
    spec = importlib.util.spec_from_file_location("_bn_zoo_config_fields", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if colon else module.get_config()


def _config_argument(argv):
    """The value of --config in `argv` (`--config=X` or `--config X`), or None."""
    args = list(argv[1:])
    for index, arg in enumerate(args):
        if arg == "--":
            break
        match = re.fullmatch(r"--?config(?:=(.*))?", arg)
        if match:
            if match.group(1) is not None:
                return match.group(1)
            return args[index + 1] if index + 1 < len(args) else None
    return None


def _field_paths(config, prefix=""):
    """Every dotted field path of a config (sub-configs included)."""
    paths = set()
    for key, value in config.items():
        path = f"{prefix}{key}"
        paths.add(path)
        if isinstance(value, (ml_collections.ConfigDict, dict)):
            paths |= _field_paths(value, path + ".")
    return paths


def _fail(error, kind, message, argv=None, exit_code=1):
    """Prints `ERROR (kind): message` (after the traceback, with
    --verbosity) and exits."""
    console.fail(error, kind, message, argv, exit_code)


def run(fn):
    """Calls `fn()`; any failure becomes one line `ERROR (Kind): message` on
    stderr and exit code 1 (130 for Ctrl-C; a preempted run: its message and
    128 + the signal number), with the traceback before it only under
    --verbosity. See `bn_zoo.training.console.report_errors`."""
    return console.report_errors(fn)
