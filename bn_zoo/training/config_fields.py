"""The trainer's config fields: each one's default and meaning.

`default_config()` is every field the trainer reads; `FIELD_DOCS` what each
means (those of `config.data` are the data source's `FIELD_DOCS`,
`bn_zoo.training.inputs`), printed by `--print_config`. How fields left at
None are filled from the model's recipe, and how values are checked:
`bn_zoo.training.config.resolve`.
"""

import json

import ml_collections
from ml_collections.config_dict import placeholder

from bn_zoo.training import inputs
from bn_zoo.training.choices import STRATEGIES

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
OPTIMIZERS = ("sgd_momentum", "adam", "adamw")
SCHEDULES = ("exponential", "cosine")
FREEZE = ("none", "backbone", "batch_norm")

# Fields a rerun in an existing workdir may change: they decide where and how
# fast the run goes, not what it computes.
RUNTIME_FIELDS = frozenset({
    "num_train_steps", "steps_per_loop", "log_every_steps",
    "checkpoint_every_steps", "max_checkpoints_to_keep", "strategy", "tpu",
    "num_cpu_devices", "jit_compile", "data.data_dir",
    "data.validate_num_files", "data.validate_num_records",
})

# Free-form sub-configs: passed on as keyword arguments, checked by the callee.
FREE_FORM = ("model.kwargs",)


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
    return flatten(to_dict(config))


def flatten(tree, prefix=""):
    """`{dotted path: value}` of a plain nested dict (free-form sub-configs,
    `FREE_FORM`, stay one entry)."""
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in FREE_FORM:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat
