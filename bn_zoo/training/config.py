"""The trainer's configuration: every field, its default, its validation.

An experiment config (`configs/<experiment>.py`) starts from
`default_config()` and changes what the experiment needs. `FIELD_DOCS` says
what every field means (those of `config.data` are the data source's
`FIELD_DOCS`, `bn_zoo.training.inputs`); `python -m trainers.train
--config=... --print_config` prints them with the resolved values. Fields left at
None are filled from the model's recipe in the registry
(`bn_zoo.model_info(name).recipe`), so the paper's recipe (Sections 4.1, 4.2)
lives in one place and every knob can still be overridden:

    config field                    recipe key
    global_batch_size               batch_size_per_replica (the paper's batch)
    num_train_steps                 train_steps
    optimizer.name                  optimizer
    optimizer.base_learning_rate    base_learning_rate
    optimizer.reference_batch_size  batch_size_per_replica
    optimizer.momentum              momentum
    optimizer.weight_decay          weight_decay
    schedule.decay_rate             lr_decay_rate
    schedule.decay_steps            lr_decay_steps
    data.distortion_strength        distortion_strength (imagenet)
    data.shuffle_buffer_size        shuffle_thoroughly (imagenet): True gives
                                    the large buffer of within-shard shuffling,
                                    False 1 (each shard read in order)

The learning rate at step t is

    base_learning_rate · global_batch_size / reference_batch_size
        · decay_rate ^ (t / decay_steps)       (t / decay_steps floored if staircase)
"""

import copy
import difflib
import json

import ml_collections
from ml_collections.config_dict import placeholder

from bn_zoo.training import inputs
from bn_zoo.training.errors import ConfigError

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
OPTIMIZERS = ("sgd_momentum", "adam")

RECIPE_FIELDS = {
    "global_batch_size": "batch_size_per_replica",
    "num_train_steps": "train_steps",
    "optimizer.name": "optimizer",
    "optimizer.base_learning_rate": "base_learning_rate",
    "optimizer.reference_batch_size": "batch_size_per_replica",
    "optimizer.momentum": "momentum",
    "optimizer.weight_decay": "weight_decay",
    "schedule.decay_rate": "lr_decay_rate",
    "schedule.decay_steps": "lr_decay_steps",
    # Only data sources with photometric distortions (imagenet) have it.
    "data.distortion_strength": "distortion_strength",
    # Only data sources read from shards (imagenet) have it.
    "data.shuffle_buffer_size": "shuffle_thoroughly",
}


def _shuffle_buffer_size(shuffle_thoroughly):
    from bn_zoo.data.imagenet import THOROUGH_SHUFFLE_BUFFER_SIZE

    return THOROUGH_SHUFFLE_BUFFER_SIZE if shuffle_thoroughly else 1


# Recipe keys whose config field takes a converted value.
RECIPE_CONVERSIONS = {"shuffle_thoroughly": _shuffle_buffer_size}

# Fields a rerun in an existing workdir may change: they decide where and how
# fast the run goes, not what it computes.
RUNTIME_FIELDS = frozenset({
    "num_train_steps", "steps_per_loop", "log_every_steps",
    "checkpoint_every_steps", "max_checkpoints_to_keep", "strategy", "tpu",
    "num_cpu_devices", "jit_compile", "data.data_dir",
    "data.validate_num_files", "data.validate_num_records",
})

# Free-form sub-configs: passed on as keyword arguments, checked by the callee.
_FREE_FORM = ("model.kwargs",)


def default_config():
    """Every field the trainer reads, with its default (meanings: FIELD_DOCS)."""
    return ml_collections.ConfigDict({
        "model": {
            "name": placeholder(str),
            "kwargs": ml_collections.ConfigDict(),
        },
        "data": inputs.default_config("mnist"),
        "seed": 0,
        "global_batch_size": placeholder(int),
        "num_train_steps": placeholder(int),
        "steps_per_loop": 1000,
        "log_every_steps": 1000,
        "eval_every_steps": 1000,
        "eval_batch_size": 1000,
        "checkpoint_every_steps": 5000,
        "max_checkpoints_to_keep": 3,
        "optimizer": {
            "name": placeholder(str),
            "base_learning_rate": placeholder(float),
            "reference_batch_size": placeholder(int),
            "momentum": placeholder(float),
            "nesterov": False,
            "weight_decay": placeholder(float),
        },
        "schedule": {
            "decay_rate": placeholder(float),
            "decay_steps": placeholder(int),
            "staircase": True,
        },
        "label_smoothing": 0.0,
        "strategy": "default",
        "tpu": "",
        "num_cpu_devices": 0,
        "synchronized_batch_norm": False,
        "mixed_precision": "float32",
        "jit_compile": False,
        "probe": {
            "layer": "",
            "unit": 0,
            "num_examples": 1000,
            "percentiles": (15, 50, 85),
        },
        "population_batches": 0,
    })


# What each field of default_config() means (config.data: the data source's
# FIELD_DOCS). "None: the recipe's <key>" marks the fields of RECIPE_FIELDS.
FIELD_DOCS = {
    "model.name": (
        "Model to train: one of bn_zoo.list_models(), or a network of your own, "
        "registered with bn_zoo.register_model or named by import path "
        "'package.module:function' (recorded by import path in config.json)."),
    "model.kwargs": (
        "Extra keyword arguments of bn_zoo.create_model (e.g. input_shape, classes, "
        "depth_multiplier, batch_norm_kwargs). Not classifier_activation, weights or "
        "input_tensor: the trainer builds the model from scratch and trains on its logits."),
    "seed": ("Seed of the weights' initialization and of the data order: the same seed "
             "gives the same batches in the same order."),
    "global_batch_size": (
        "Training examples per step, summed over all replicas; must divide evenly "
        "among them. None: the recipe's batch_size_per_replica (the paper's batch)."),
    "num_train_steps": "Length of the run, in training steps. None: the recipe's train_steps.",
    "steps_per_loop": (
        "Most training steps per tf.function call; the loop also returns to Python at "
        "every log, evaluation and checkpoint step."),
    "log_every_steps": (
        "Interval, in steps, of the progress line (training loss and accuracy, learning "
        "rate, steps/s) and of the train/* TensorBoard scalars."),
    "eval_every_steps": (
        "Interval, in steps, of the evaluation on data.eval_split: one metrics.csv row "
        "(also at step 0 of a fresh run and at the last step)."),
    "eval_batch_size": "Global batch of the evaluation; must divide evenly among the replicas.",
    "checkpoint_every_steps": "Interval, in steps, of the checkpoints (also at the last step).",
    "max_checkpoints_to_keep": "How many of the newest checkpoints workdir/checkpoints keeps.",
    "optimizer.name": f"One of {', '.join(OPTIMIZERS)}. None: the recipe's optimizer.",
    "optimizer.base_learning_rate": (
        "Learning rate at a global batch of reference_batch_size: the run starts at "
        "base_learning_rate * global_batch_size / reference_batch_size. None: the "
        "recipe's base_learning_rate."),
    "optimizer.reference_batch_size": (
        "Global batch at which base_learning_rate applies. None: the recipe's "
        "batch_size_per_replica."),
    "optimizer.momentum": "Momentum of sgd_momentum (0: plain SGD). None: the recipe's momentum.",
    "optimizer.nesterov": "Nesterov momentum (sgd_momentum).",
    "optimizer.weight_decay": (
        "L2 weight decay: the gradient of every kernel w gets weight_decay * w (a loss "
        "term weight_decay/2 * sum(w**2)). None: the recipe's weight_decay."),
    "schedule.decay_rate": (
        "Exponential decay: the learning rate is multiplied by decay_rate every "
        "decay_steps steps (1.0: constant). None: the recipe's lr_decay_rate."),
    "schedule.decay_steps": "Steps per decay_rate factor. None: the recipe's lr_decay_steps.",
    "schedule.staircase": (
        "Decay in whole steps (decay_rate ** floor(t / decay_steps)) rather than "
        "continuously."),
    "label_smoothing": "Label smoothing of the cross-entropy loss, in [0, 1).",
    "strategy": (
        f"tf.distribute strategy: one of {', '.join(STRATEGIES)} (multi_worker_mirrored "
        "reads the cluster from TF_CONFIG). --strategy overrides it."),
    "tpu": ("TPU name or grpc:// address for strategy tpu ('' for a local TPU VM). "
            "--tpu overrides it."),
    "num_cpu_devices": (
        "0: the CPU stays one device; N > 0 splits it into N logical devices (e.g. to "
        "run strategy mirrored on a CPU)."),
    "synchronized_batch_norm": (
        "BN statistics over the global batch of all replicas (one all-reduce per BN "
        "layer) instead of each replica's own batch."),
    "mixed_precision": (
        f"Keras dtype policy: one of {', '.join(PRECISIONS)} (mixed_float16 with loss "
        "scaling); BN statistics and variables stay float32."),
    "jit_compile": "XLA-compile the training step.",
    "probe.layer": (
        "Layer whose input is probed at every evaluation (Figure 1(b, c) probes "
        "hidden3_sigmoid, the input of a sigmoid); '' for no probe."),
    "probe.unit": "Unit (index on the last axis) of the probed input.",
    "probe.num_examples": "How many of the first evaluation images the probe reads.",
    "probe.percentiles": "Percentiles of the probed unit's input, written as probe_p<q> columns.",
    "population_batches": (
        "After the last step: Algorithm 2's population statistics from this many "
        "training batches (0: skip), then the final evaluation with them."),
}


def field_docs(data_name="mnist"):
    """What every field of a trainer config with data source `data_name` means,
    by dotted path (`data.*` from the data source), in a reading order."""
    docs = {k: v for k, v in FIELD_DOCS.items() if k.startswith("model.")}
    docs.update({f"data.{k}": v for k, v in inputs.field_docs(data_name).items()})
    docs.update(FIELD_DOCS)
    return docs


def to_dict(config):
    """A JSON-compatible plain dict of `config` (tuples become lists)."""
    if isinstance(config, ml_collections.ConfigDict):
        config = config.to_dict()
    return json.loads(json.dumps(config))


def flat_fields(config):
    """`{dotted path: value}` of every field of `config` (a `ConfigDict` or
    dict; free-form sub-configs such as model.kwargs stay one entry)."""
    return _flatten(to_dict(config))


def _flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in _FREE_FORM:
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _check_known_fields(config):
    data_name = config.get("data", {}).get("name", "mnist")
    if data_name not in inputs.INPUTS:
        raise ConfigError(
            f"Unknown data source config.data.name={data_name!r}. Known: "
            f"{', '.join(sorted(inputs.INPUTS))}."
        )
    schema = to_dict(default_config())
    schema["data"] = to_dict(inputs.default_config(data_name))
    known = _flatten(schema)
    for path in _flatten(config):
        if path not in known:
            close = difflib.get_close_matches(path, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"Unknown config field {path!r}.{hint} --print_config prints the "
                "trainer's fields with their meaning (bn_zoo/training/config.py)."
            )


def _get(tree, path):
    for key in path.split("."):
        tree = tree[key]
    return tree


def _set(tree, path, value):
    *parents, last = path.split(".")
    for key in parents:
        tree = tree[key]
    tree[last] = value


def _fill_from_recipe(config):
    from bn_zoo.models import registry

    name = config["model"]["name"]
    if name is None:
        raise ConfigError("config.model.name is not set. Use one of: "
                          f"{', '.join(registry.list_models())}, or a network of your "
                          "own by import path, 'package.module:function'.")
    if not isinstance(name, str) or (name not in registry.list_models() and ":" not in name):
        raise ConfigError(
            f"Unknown model config.model.name={name!r}. Known models: "
            f"{', '.join(registry.list_models())}. A network of your own: name it by "
            "import path, 'package.module:function', or register it with "
            "@bn_zoo.register_model in a module the config file imports."
        )
    try:
        info = registry.model_info(name)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"config.model.name={name!r}: {error}") from None
    takes = getattr(info.factory, "takes", None)
    if config.get("synchronized_batch_norm") and takes and not takes("batch_norm_kwargs"):
        raise ConfigError(
            f"config.synchronized_batch_norm=True needs a model builder that takes "
            f"`batch_norm_kwargs` (and passes them to its BatchNormalization layers); "
            f"{name!r} does not. Add the argument, or set synchronized_batch_norm=False.")
    kwargs = config["model"].get("kwargs") or {}
    unexpected = [key for key in kwargs if takes and not takes(key)]
    if unexpected:
        raise ConfigError(
            f"config.model.kwargs has {', '.join(repr(k) for k in unexpected)}, which the "
            f"model builder {name!r} does not take. A config built on "
            "configs/imagenet_*.py sets the Inception family's depth_multiplier, "
            "dropout_rate and lrn: give your model its own `config.model.kwargs = "
            "ml_collections.ConfigDict({...})`, or add the arguments to the builder.")
    if info.family == "custom" and info.import_path:
        # Recorded by import path, so restore_model and trainers.export find
        # it in a process that has not imported its module.
        config["model"]["name"] = info.import_path
    recipe = info.recipe
    for path, key in RECIPE_FIELDS.items():
        try:
            value = _get(config, path)
        except KeyError:  # A field of another data source.
            continue
        if value is None:
            if recipe.get(key) is None:
                if path == "optimizer.reference_batch_size" and info.family == "custom":
                    # No reference batch in the recipe: the learning rate is
                    # base_learning_rate itself.
                    _set(config, path, config["global_batch_size"])
                    continue
                raise ConfigError(
                    f"config.{path} is not set and the recipe of {name!r} has no "
                    f"{key!r}; set it in the config or with --config.{path}=..."
                )
            convert = RECIPE_CONVERSIONS.get(key, lambda value: value)
            _set(config, path, convert(recipe[key]))


def _require(condition, message):
    if not condition:
        raise ConfigError(message)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_values(c):
    for field in ("global_batch_size", "num_train_steps", "steps_per_loop",
                  "log_every_steps", "eval_every_steps", "eval_batch_size",
                  "checkpoint_every_steps", "max_checkpoints_to_keep",
                  "optimizer.reference_batch_size", "schedule.decay_steps"):
        value = _get(c, field)
        _require(_is_int(value) and value > 0,
                 f"config.{field} must be a positive integer; got {value!r}.")
    for field in ("seed", "num_cpu_devices", "population_batches", "probe.unit",
                  "probe.num_examples"):
        value = _get(c, field)
        _require(_is_int(value) and value >= 0,
                 f"config.{field} must be an integer >= 0; got {value!r}.")
    _require(c["strategy"] in STRATEGIES,
             f"config.strategy must be one of {STRATEGIES}; got {c['strategy']!r}.")
    _require(c["mixed_precision"] in PRECISIONS,
             f"config.mixed_precision must be one of {PRECISIONS}; got "
             f"{c['mixed_precision']!r}.")
    opt = c["optimizer"]
    _require(opt["name"] in OPTIMIZERS,
             f"config.optimizer.name must be one of {OPTIMIZERS}; got {opt['name']!r}.")
    for field in ("optimizer.base_learning_rate", "optimizer.momentum",
                  "optimizer.weight_decay", "schedule.decay_rate", "label_smoothing"):
        value = _get(c, field)
        _require(isinstance(value, (int, float)) and not isinstance(value, bool)
                 and value >= 0, f"config.{field} must be a number >= 0; got {value!r}.")
    _require(c["optimizer"]["base_learning_rate"] > 0,
             "config.optimizer.base_learning_rate must be > 0.")
    _require(c["label_smoothing"] < 1, "config.label_smoothing must be < 1.")
    kwargs = c["model"]["kwargs"]
    for reserved in ("classifier_activation", "weights", "input_tensor"):
        _require(reserved not in kwargs,
                 f"config.model.kwargs must not set {reserved!r}: the trainer builds "
                 "the model from scratch and trains on its logits.")
    probe = c["probe"]
    if probe["layer"]:
        pcts = probe["percentiles"]
        _require(isinstance(pcts, (list, tuple)) and pcts
                 and all(isinstance(p, (int, float)) and 0 <= p <= 100 for p in pcts),
                 f"config.probe.percentiles must be numbers in [0, 100]; got {pcts!r}.")
        _require(probe["num_examples"] > 0, "config.probe.num_examples must be > 0.")


def resolve(config):
    """Validates `config` and fills the fields left at None from the recipe.

    Args:
        config: A `ConfigDict` (or dict) shaped like `default_config()`.

    Returns:
        A new, unlocked `ConfigDict` in which every field has a value.

    Raises:
        ConfigError: an unknown field, an unknown model or data source, or a
            value out of range; the message names the field.
    """
    if isinstance(config, ml_collections.ConfigDict):
        config = config.to_dict()
    config = copy.deepcopy(dict(config))
    _check_known_fields(config)
    merged = to_dict(default_config())
    merged["data"] = to_dict(inputs.default_config(config.get("data", {}).get("name", "mnist")))
    for path, value in _flatten(config).items():
        _set(merged, path, value)
    _fill_from_recipe(merged)
    _check_values(merged)
    inputs.check_config(merged["data"])
    return ml_collections.ConfigDict(merged)


def incompatible_fields(saved, config):
    """The fields (dotted paths) in which two resolved configs differ in a way
    that changes what a run computes (anything outside RUNTIME_FIELDS)."""
    old, new = _flatten(to_dict(saved)), _flatten(to_dict(config))
    return sorted(
        path for path in set(old) | set(new)
        if path not in RUNTIME_FIELDS and old.get(path, "<missing>") != new.get(path, "<missing>")
    )
