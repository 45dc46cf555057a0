"""Moving averages of the batch statistics: the update, zero-debiasing, a warning.

With momentum m the moving average after t updates from an initial value v₀
is m^t·v₀ + (1 − m)·Σ m^(t−i) x_i: with the default m = 0.99, 100 steps
leave 37% of the initializer's mean 0 and variance 1 in it, and a network
that inference normalizes with them can sit at chance.

`zero_debias=True` divides by 1 − m^t, as TensorFlow's
`assign_moving_average(..., zero_debias=True)` (Kingma & Ba, 2015, Section 3):
the average then holds only the observed statistics, equally far from the
initializer after any number of updates. Stored is the debiased value itself,
so inference, folding and export read it like any moving average:

    v_t = (m (1 − m^(t−1)) v_(t−1) + (1 − m) x_t) / (1 − m^t)

Without it, `warn_if_not_caught_up` logs a warning when inference uses
moving averages in which the initial values still weigh more than 1%.
"""

import keras
from absl import logging
from keras import ops

# Inference warns while the initial values weigh more than this in the
# moving averages (0.99^t > 0.01 for t < 459 at the default momentum).
INITIAL_WEIGHT_WARNING = 0.01

# The update count given to layers loaded from a file that did not save it:
# their statistics are taken as caught up.
UNKNOWN_UPDATES = float(2**24)

_warned = set()


def average(old, value, momentum, updates, zero_debias):
    """One update of a moving average.

    Args:
        old: The average so far.
        value: The new observation x_t.
        momentum: m, a Python float.
        updates: How many updates came before this one (t − 1), a float32
            scalar; used only with `zero_debias`.
        zero_debias: Whether to divide by 1 − m^t.
    """
    if not zero_debias:
        return old * momentum + value * (1.0 - momentum)
    weight = ops.power(ops.convert_to_tensor(momentum, "float32"), updates)
    return (old * (momentum * (1.0 - weight)) + value * (1.0 - momentum)) / (
        1.0 - momentum * weight
    )


def update(layer, mean, biased_variance, count, stddev=None):
    """One training step's update of `layer`'s moving averages, counted.

    Moves the averages towards μ_B and c·σ²_B, or under renorm towards μ_B
    and σ = √(c·σ²_B + ε) (`stddev`, given for ghost batches), zero-debiased
    when the layer asks. A run-time m' <= 1 leaves every variable as it was.
    """
    variance = biased_variance
    if layer.variance_correction == "unbiased":
        variance = biased_variance * ops.cast(
            count / (count - 1.0), keras.backend.standardize_dtype(biased_variance.dtype))
    # The statistics are float32 under mixed precision, float64 in a
    # float64 layer: the batch's moments are cast to their dtype.
    dtype = layer.moving_mean.dtype
    mean, variance = ops.cast(mean, dtype), ops.cast(variance, dtype)
    read = ops.convert_to_tensor
    updates = read(layer.moving_statistics_updates)

    def towards(variable, value, momentum):
        return average(read(variable), value, momentum, updates, layer.zero_debias)

    new = [(layer.moving_mean, towards(layer.moving_mean, mean, layer.momentum))]
    if layer.renorm:
        # As the paper and Keras: the averages are of σ, the moving
        # variance is σ² − ε, so that inference divides by σ.
        if stddev is None:
            stddev = ops.sqrt(variance + layer.epsilon)
        stddev = ops.cast(stddev, dtype)
        moving_stddev = average(
            ops.sqrt(read(layer.moving_variance) + layer.epsilon),
            stddev, layer.momentum, updates, layer.zero_debias,
        )
        new += [
            (layer.moving_variance, ops.relu(ops.square(moving_stddev) - layer.epsilon)),
            (layer.renorm_mean, towards(layer.renorm_mean, mean, layer.renorm_momentum)),
            (layer.renorm_stddev,
             towards(layer.renorm_stddev, stddev, layer.renorm_momentum)),
        ]
    else:
        new.append(
            (layer.moving_variance,
             towards(layer.moving_variance, variance, layer.momentum))
        )
    new.append((layer.moving_statistics_updates, updates + 1.0))
    if not isinstance(count, float):
        # Where no assertion can stop the step (XLA drops them), m' <= 1
        # leaves the moving statistics as they were rather than inf/NaN.
        valid = ops.greater(count, 1.0)
        new = [(v, ops.where(valid, value, read(v))) for v, value in new]
    for variable, value in new:
        variable.assign(value)


def eager_value(variable):
    """A scalar variable's current value as a Python float, also while a
    function is being traced (TensorFlow); None where it cannot be read."""
    try:
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            with tf.init_scope():
                return float(tf.convert_to_tensor(variable.value).numpy())
        return float(ops.convert_to_numpy(variable.value))
    except Exception:  # a traced value (JAX's jit) or a variable not readable here
        return None


def warn_if_not_caught_up(layer):
    """Logs a warning when `layer` normalizes inference with moving averages
    that still hold more than 1% of their initial values.

    Checked when inference runs eagerly and when an inference function is
    traced (the first `predict`, `evaluate`, export); on JAX, whose jit
    traces hold no values, only in eager calls. A layer never updated
    (count 0: untrained, or restored from a checkpoint that did not count)
    and a zero-debiased layer after its first update do not warn. Each
    message is logged once per process.
    """
    updates = eager_value(layer.moving_statistics_updates)
    if updates is None or updates < 1:
        return
    if layer.zero_debias or eager_value(layer.use_population_statistics) != 0.0:
        return
    weight = layer.momentum**updates
    if weight <= INITIAL_WEIGHT_WARNING:
        return
    message = (
        "BatchNormalization layers normalize inference with moving averages after "
        f"only {updates:.0f} training updates: with momentum={layer.momentum:g} "
        f"their initial values (moving_mean_initializer, moving_variance_initializer) "
        f"still make up {weight:.0%} of them, and predictions can sit near chance. "
        "Estimate Algorithm 2's population statistics (bn_zoo.population.estimate, "
        "or the bn_zoo.callbacks.PopulationStatistics callback in fit), build the "
        "layers with zero_debias=True, lower the momentum, or train longer."
    )
    if message not in _warned:
        _warned.add(message)
        logging.warning("%s", message)
