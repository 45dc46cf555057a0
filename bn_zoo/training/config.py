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
import json
import os

import ml_collections
from ml_collections.config_dict import placeholder

from bn_zoo.training import inputs
from bn_zoo.training.choices import STRATEGIES
from bn_zoo.training.errors import ConfigError

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
OPTIMIZERS = ("sgd_momentum", "adam", "adamw")
SCHEDULES = ("exponential", "cosine")
FREEZE = ("none", "backbone", "batch_norm")

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
            "weights": placeholder(str),
            "freeze": "none",
            "freeze_steps": placeholder(int),
            "freeze_estimate_batches": 20,
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
            "name": "exponential",
            "decay_rate": placeholder(float),
            "decay_steps": placeholder(int),
            "staircase": True,
            "warmup_steps": 0,
            "alpha": 0.0,
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
        "input_tensor: the trainer builds the model itself and trains on its logits "
        "(weights: model.weights). Without `classes`, a builder that takes it gets the "
        "data's class count where that differs from its default."),
    "model.weights": (
        "Initial weights of a fresh run: None (random), a registered name of the model "
        "(bn_zoo.model_info(name).weights, e.g. 'imagenet'; its builder arguments are "
        "added to model.kwargs), a '.weights.h5' or '.keras' file, or another trainer "
        "workdir (its newest readable checkpoint). Layers are matched by the file's "
        "layout (layer class and rank, as Keras' load_weights) and shape: a head of "
        "another class count is left new; the run prints what was loaded and what is "
        "new. A resumed run restores its checkpoint and never loads these again."),
    "model.freeze": (
        f"One of {', '.join(FREEZE)}. 'backbone': every layer but the head (the "
        "model's last layer with weights) is frozen, trainable=False, its BN layers "
        "normalizing in inference mode with their moving averages (Keras 3's "
        "convention); 'batch_norm': every BN layer frozen so, the rest trains."),
    "model.freeze_steps": (
        "None: frozen for the whole run (as is N >= num_train_steps); N > 0: the first N "
        "steps frozen, then everything trains (decided from the global step, so a resumed "
        "run freezes and unfreezes at the same steps). Unused with freeze='none'."),
    "model.freeze_estimate_batches": (
        "Before a fresh run freezes BN layers whose moving averages have not caught up "
        "(initial values still weigh > 1%, or never updated), Algorithm 2's statistics "
        "are estimated on this many training batches and become their moving averages; "
        "0: never (the run says so)."),
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
    "optimizer.name": (
        f"One of {', '.join(OPTIMIZERS)} (adamw: Adam with decoupled weight decay of "
        "the kernels, Loshchilov & Hutter). None: the recipe's optimizer."),
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
        "term weight_decay/2 * sum(w**2)); with adamw, decoupled: every step takes "
        "learning_rate * weight_decay * w off each kernel. None: the recipe's "
        "weight_decay."),
    "schedule.name": (
        f"One of {', '.join(SCHEDULES)}. exponential: decay_rate every decay_steps; "
        "cosine: linear warm-up from 0 over warmup_steps, then cosine decay over "
        "decay_steps (keras.optimizers.schedules.CosineDecay)."),
    "schedule.decay_rate": (
        "Exponential decay: the learning rate is multiplied by decay_rate every "
        "decay_steps steps (1.0: constant). None: the recipe's lr_decay_rate (unused "
        "by cosine)."),
    "schedule.decay_steps": (
        "Steps per decay_rate factor (exponential), or the length of the cosine decay "
        "after the warm-up. None: the recipe's lr_decay_steps (exponential), "
        "num_train_steps - warmup_steps (cosine)."),
    "schedule.staircase": (
        "Decay in whole steps (decay_rate ** floor(t / decay_steps)) rather than "
        "continuously (exponential)."),
    "schedule.warmup_steps": (
        "Cosine: steps of linear warm-up from 0 to the learning rate (0: none)."),
    "schedule.alpha": "Cosine: the final learning rate, as a fraction of the peak.",
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
        "training batches (0: skip), frozen BN layers included, then the final "
        "evaluation with them. They are kept apart from the training checkpoints "
        "(workdir/population/), so a resumed or extended run trains and evaluates "
        "with the moving averages it trained with."),
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
    for path, value in _flatten(config).items():
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
    old, new = _flatten(to_dict(saved)), _flatten(to_dict(config))
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
    return _flatten(schema)
