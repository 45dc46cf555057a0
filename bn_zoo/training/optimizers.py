"""The optimizer and learning-rate schedule of a resolved config.

Keras 3 optimizers and schedules, used as they are:

- `sgd_momentum`: `keras.optimizers.SGD` with `momentum` (the paper's
  "stochastic gradient descent with momentum", Section 4.2); weight decay is
  the L2 term of the loss (`bn_zoo.training.steps`).
- `adam`: `keras.optimizers.Adam`, weight decay as for SGD.
- `adamw`: `keras.optimizers.AdamW`, weight decay decoupled from the
  gradient (Loshchilov & Hutter, 2019) and applied to the kernels only, not
  to biases or BN's γ and β (as the L2 term).

Schedules (`config.schedule.name`):

- `exponential`: `keras.optimizers.schedules.ExponentialDecay` (GoogLeNet's
  "decreasing the learning rate by 4% every 8 epochs" is decay_rate=0.96,
  staircase).
- `cosine`: `keras.optimizers.schedules.CosineDecay` with a linear warm-up
  from 0 to the learning rate over `warmup_steps`, then a cosine decay to
  `alpha` times it over `decay_steps`.

Both are functions of the optimizer's iteration count, which is saved in
every checkpoint: a resumed run continues the same schedule. For
`mixed_float16` the optimizer is wrapped in
`keras.optimizers.LossScaleOptimizer` (dynamic loss scaling).
"""

import keras


def learning_rate(config):
    """The learning rate after any warm-up: the base rate scaled linearly with
    the global batch (base_learning_rate · global_batch_size /
    reference_batch_size)."""
    opt = config.optimizer
    return opt.base_learning_rate * config.global_batch_size / opt.reference_batch_size


def learning_rate_schedule(config):
    """The `keras.optimizers.schedules.LearningRateSchedule` of `config`."""
    schedule = config.schedule
    if schedule.get("name", "exponential") == "cosine":
        warmup = schedule.warmup_steps
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else learning_rate(config),
            decay_steps=schedule.decay_steps,
            alpha=schedule.alpha,
            warmup_target=learning_rate(config) if warmup else None,
            warmup_steps=warmup,
        )
    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=learning_rate(config),
        decay_steps=schedule.decay_steps,
        decay_rate=schedule.decay_rate,
        staircase=schedule.staircase,
    )


def decays_in_optimizer(config):
    """Whether weight decay is the optimizer's own (adamw) rather than an L2
    term of the loss."""
    return config.optimizer.name == "adamw"


def create_optimizer(config, variables=None):
    """A Keras optimizer for `config` (create it inside `strategy.scope()`).

    Args:
        config: The resolved config.
        variables: The variables it will update (every variable that trains
            at some step, frozen ones included). Given, AdamW decays only the
            kernels among them; None leaves AdamW's default (all).
    """
    opt = config.optimizer
    schedule = learning_rate_schedule(config)
    if opt.name == "sgd_momentum":
        optimizer = keras.optimizers.SGD(
            learning_rate=schedule, momentum=opt.momentum, nesterov=opt.nesterov
        )
    elif opt.name == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=opt.weight_decay)
        if variables is not None:
            optimizer.exclude_from_weight_decay(
                var_list=[v for v in variables if not v.path.endswith("kernel")])
    else:
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
    if config.mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def current_learning_rate(optimizer):
    """The learning rate the next step will use, as a Python float."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    rate = inner.learning_rate
    return float(keras.ops.convert_to_numpy(rate))
