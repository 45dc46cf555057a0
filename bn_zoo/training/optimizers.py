"""The optimizer and learning-rate schedule of a resolved config.

Keras 3 optimizers and schedules, used as they are: `keras.optimizers.SGD`
(with `momentum`, the paper's "stochastic gradient descent with momentum",
Section 4.2) or `Adam`, driven by `keras.optimizers.schedules.ExponentialDecay`
(GoogLeNet's "decreasing the learning rate by 4% every 8 epochs" is
decay_rate=0.96, staircase). For `mixed_float16` the optimizer is wrapped in
`keras.optimizers.LossScaleOptimizer` (dynamic loss scaling).
"""

import keras


def learning_rate(config):
    """The initial learning rate: the base rate scaled linearly with the global
    batch (base_learning_rate · global_batch_size / reference_batch_size)."""
    opt = config.optimizer
    return opt.base_learning_rate * config.global_batch_size / opt.reference_batch_size


def learning_rate_schedule(config):
    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=learning_rate(config),
        decay_steps=config.schedule.decay_steps,
        decay_rate=config.schedule.decay_rate,
        staircase=config.schedule.staircase,
    )


def create_optimizer(config):
    """A Keras optimizer for `config` (create it inside `strategy.scope()`)."""
    opt = config.optimizer
    schedule = learning_rate_schedule(config)
    if opt.name == "sgd_momentum":
        optimizer = keras.optimizers.SGD(
            learning_rate=schedule, momentum=opt.momentum, nesterov=opt.nesterov
        )
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
