"""The trainer's configuration: `resolve(config)` fills and checks it.

An experiment config (`configs/<experiment>.py`) starts from
`default_config()` and changes what the experiment needs; the fields, their
defaults and their meanings (`FIELD_DOCS`) are in
`bn_zoo.training.config_fields` and re-exported here. `python -m
trainers.train --config=... --print_config` prints them with the resolved
values. Fields left at
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

The learning rate at step t is, with schedule.name "exponential",

    base_learning_rate · global_batch_size / reference_batch_size
        · decay_rate ^ (t / decay_steps)       (t / decay_steps floored if staircase)

and with "cosine" a linear warm-up from 0 over warmup_steps, then a cosine
decay to alpha times the peak over decay_steps (`bn_zoo.training.optimizers`).

Fine-tuning (docs/finetuning.md): `model.weights` starts from a registered
name, a `.weights.h5` or `.keras` file or another workdir
(`bn_zoo.training.warm_start`); `model.freeze` and `model.freeze_steps`
freeze the backbone or the BN layers for the whole run or its first steps
(`bn_zoo.training.freezing`).
"""

import copy
import difflib
import os

import ml_collections

from bn_zoo.training import inputs
from bn_zoo.training.config_fields import (  # noqa: F401 - re-exported
    FIELD_DOCS,
    FREE_FORM,
    FREEZE,
    OPTIMIZERS,
    PRECISIONS,
    RUNTIME_FIELDS,
    SCHEDULES,
    default_config,
    field_docs,
    flat_fields,
    flatten,
    to_dict,
)
from bn_zoo.training.choices import STRATEGIES
from bn_zoo.training.errors import ConfigError

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


# Fields of the exponential schedule alone: a cosine schedule needs no
# recipe value for them.
_EXPONENTIAL_ONLY = ("schedule.decay_rate",)

# Recipe keys whose config field takes a converted value.
RECIPE_CONVERSIONS = {"shuffle_thoroughly": _shuffle_buffer_size}

def _check_known_fields(config):
    data_name = config.get("data", {}).get("name", "mnist")
    if data_name not in inputs.INPUTS:
        raise ConfigError(
            f"Unknown data source config.data.name={data_name!r}. Known: "
            f"{', '.join(sorted(inputs.INPUTS))}."
        )
    schema = to_dict(default_config())
    schema["data"] = to_dict(inputs.default_config(data_name))
    known = flatten(schema)
    for path in flatten(config):
        if path not in known:
            close = difflib.get_close_matches(path, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"Unknown config field {path!r}.{hint} --print_config prints the "
                "trainer's fields with their meaning (bn_zoo/training/config_fields.py)."
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
    from bn_zoo.models import catalogue

    name = config["model"]["name"]
    if name is None:
        raise ConfigError("config.model.name is not set. Use one of: "
                          f"{', '.join(catalogue.list_models())}, or a network of your "
                          "own by import path, 'package.module:function'.")
    if not isinstance(name, str) or (name not in catalogue.list_models() and ":" not in name):
        raise ConfigError(
            f"Unknown model config.model.name={name!r}. Known models: "
            f"{', '.join(catalogue.list_models())}. A network of your own: name it by "
            "import path, 'package.module:function', or register it with "
            "@bn_zoo.register_model in a module the config file imports."
        )
    try:
        info = catalogue.model_info(name)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"config.model.name={name!r}: {error}") from None
    takes = getattr(info.factory, "takes", None)
    if config.get("synchronized_batch_norm") and takes and not takes("batch_norm_kwargs"):
        raise ConfigError(
            f"config.synchronized_batch_norm=True needs a model builder that takes "
            f"`batch_norm_kwargs` (and passes them to its BatchNormalization layers); "
            f"{name!r} does not. Add the argument, or set synchronized_batch_norm=False.")
    kwargs = config["model"].get("kwargs") or {}
    # A field left at None that the builder does not take is unset, and dropped
    # (configs/finetune.py's depth_multiplier for a network without one).
    for key in [k for k, v in kwargs.items() if v is None and takes and not takes(k)]:
        del kwargs[key]
    unexpected = [key for key in kwargs if takes and not takes(key)]
    if unexpected:
        raise ConfigError(
            f"config.model.kwargs has {', '.join(repr(k) for k in unexpected)}, which the "
            f"model builder {name!r} does not take. A config built on "
            "configs/imagenet.py sets the Inception family's depth_multiplier, "
            "dropout_rate and lrn: give your model its own `config.model.kwargs = "
            "ml_collections.ConfigDict({...})`, or add the arguments to the builder.")
    if info.family == "custom" and info.import_path:
        # Recorded by import path, so restore_model and trainers.export find
        # it in a process that has not imported its module.
        config["model"]["name"] = info.import_path
    _add_weights_arguments(config, info)
    recipe = info.recipe
    cosine = config.get("schedule", {}).get("name") == "cosine"
    if cosine and config["schedule"].get("decay_steps") is None:
        steps = config.get("num_train_steps")
        if steps is None:
            steps = recipe.get("train_steps")
        warmup = config["schedule"].get("warmup_steps") or 0
        if _is_int(steps) and _is_int(warmup):
            config["schedule"]["decay_steps"] = max(steps - warmup, 1)
    for path, key in RECIPE_FIELDS.items():
        try:
            value = _get(config, path)
        except KeyError:  # A field of another data source.
            continue
        if value is None and cosine and path in _EXPONENTIAL_ONLY:
            _set(config, path, 1.0)  # Unused by the cosine schedule.
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


def _add_weights_arguments(config, info):
    """Adds the builder and BN arguments that registered `model.weights` need
    (`RegisteredWeights.model_kwargs`, `.batch_norm_kwargs`) to model.kwargs,
    so config.json records the network that was built; refuses values that
    contradict them."""
    weights = config["model"].get("weights")
    if not isinstance(weights, str) or not weights.strip():
        return
    if weights not in info.weights:  # A file or a workdir, recorded by absolute path.
        config["model"]["weights"] = os.path.abspath(os.path.expanduser(weights))
        return
    registered = info.weights[weights]
    kwargs = config["model"].setdefault("kwargs", {})
    for key, needed in registered.model_kwargs.items():
        if key in kwargs and kwargs[key] is not None and kwargs[key] != needed:
            raise ConfigError(
                f"config.model.weights={weights!r} fits the {info.name!r} network built with "
                f"{key}={needed!r}; config.model.kwargs.{key} is {kwargs[key]!r}. Leave it "
                "unset, or start from other weights.")
        kwargs[key] = needed
    if registered.batch_norm_kwargs:
        given = dict(kwargs.get("batch_norm_kwargs") or {})
        for key, needed in registered.batch_norm_kwargs.items():
            if key in given and given[key] != needed:
                raise ConfigError(
                    f"config.model.weights={weights!r} needs BN {key}={needed!r}; "
                    f"config.model.kwargs.batch_norm_kwargs.{key} is {given[key]!r}. "
                    "Leave it unset, or start from other weights.")
            given[key] = needed
        kwargs["batch_norm_kwargs"] = given


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
    _require(c["schedule"]["name"] in SCHEDULES,
             f"config.schedule.name must be one of {SCHEDULES}; got "
             f"{c['schedule']['name']!r}.")
    warmup = c["schedule"]["warmup_steps"]
    _require(_is_int(warmup) and warmup >= 0,
             f"config.schedule.warmup_steps must be an integer >= 0; got {warmup!r}.")
    alpha = c["schedule"]["alpha"]
    _require(isinstance(alpha, (int, float)) and not isinstance(alpha, bool)
             and 0 <= alpha <= 1, f"config.schedule.alpha must be a number in [0, 1]; "
             f"got {alpha!r}.")
    _check_model_fields(c["model"])
    for field in ("optimizer.base_learning_rate", "optimizer.momentum",
                  "optimizer.weight_decay", "schedule.decay_rate", "label_smoothing"):
        value = _get(c, field)
        _require(isinstance(value, (int, float)) and not isinstance(value, bool)
                 and value >= 0, f"config.{field} must be a number >= 0; got {value!r}.")
    _require(c["optimizer"]["base_learning_rate"] > 0,
             "config.optimizer.base_learning_rate must be > 0.")
    _require(c["label_smoothing"] < 1, "config.label_smoothing must be < 1.")
    kwargs = c["model"]["kwargs"]
    for reserved in ("classifier_activation", "input_tensor"):
        _require(reserved not in kwargs,
                 f"config.model.kwargs must not set {reserved!r}: the trainer builds "
                 "the model itself and trains on its logits.")
    _require("weights" not in kwargs,
             "config.model.kwargs must not set 'weights': set config.model.weights "
             "(a registered name, a .weights.h5 or .keras file, or a workdir).")
    probe = c["probe"]
    if probe["layer"]:
        pcts = probe["percentiles"]
        _require(isinstance(pcts, (list, tuple)) and pcts
                 and all(isinstance(p, (int, float)) and 0 <= p <= 100 for p in pcts),
                 f"config.probe.percentiles must be numbers in [0, 100]; got {pcts!r}.")
        _require(probe["num_examples"] > 0, "config.probe.num_examples must be > 0.")


def _check_model_fields(model):
    freeze = model["freeze"]
    _require(freeze in FREEZE,
             f"config.model.freeze must be one of {FREEZE}; got {freeze!r}.")
    steps = model["freeze_steps"]
    _require(steps is None or (_is_int(steps) and steps > 0),
             f"config.model.freeze_steps must be None (frozen for the whole run) or an "
             f"integer > 0 (the step that unfreezes); got {steps!r}.")
    batches = model["freeze_estimate_batches"]
    _require(_is_int(batches) and batches >= 0,
             f"config.model.freeze_estimate_batches must be an integer >= 0; got "
             f"{batches!r}.")
    weights = model["weights"]
    if weights is not None:
        _require(isinstance(weights, str) and weights.strip(),
                 f"config.model.weights must be a registered name, a file or a workdir "
                 f"path; got {weights!r}.")


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
    for path, value in flatten(config).items():
        _set(merged, path, value)
    _fill_from_recipe(merged)
    _check_values(merged)
    inputs.check_config(merged["data"])
    recorded = getattr(inputs, "recorded_name", None)  # A source of yours: by import path.
    if recorded is not None:
        merged["data"]["name"] = recorded(merged["data"]["name"])
    return ml_collections.ConfigDict(merged)


def incompatible_fields(saved, config):
    """The fields (dotted paths) in which two resolved configs differ in a way
    that changes what a run computes (anything outside RUNTIME_FIELDS).

    A field that `saved` lacks (a config.json written before the field
    existed) counts as its default: a run of an older bn_zoo resumes as long
    as the new field keeps the behaviour it had (e.g. model.freeze "none")."""
    old, new = flatten(to_dict(saved)), flatten(to_dict(config))
    defaults = _defaults(new.get("data.name", "mnist"))
    return sorted(
        path for path in set(old) | set(new)
        if path not in RUNTIME_FIELDS
        and old.get(path, defaults.get(path, "<missing>")) != new.get(path, "<missing>")
    )


def _defaults(data_name):
    schema = to_dict(default_config())
    try:
        schema["data"] = to_dict(inputs.default_config(data_name))
    except ConfigError:
        pass
    return flatten(schema)
