"""Checking the arguments of `BatchNormalization`.

Each `check_*` function refuses a bad argument with a `ValueError` (or a
`TypeError` for an `axis` that is not an integer) that names the argument,
what it received and what it takes, and returns the argument in the form the
layer stores and `get_config` saves. The layer calls them before it stores
anything, in the order of its signature. `channel_axis` checks `axis` against
the input when the layer is built.

The choice of inference statistics is stored in the scalar variable
`use_population_statistics`; `flag` and `statistics_of` convert between the
two.
"""

import math
import numbers

import keras
from keras import ops

from bn_zoo.layers import renorm as renorm_lib

VARIANCE_CORRECTIONS = ("unbiased", "biased")
INFERENCE_STATISTICS = ("moving", "population")


def _is_integer(value):
    """A Python or numpy integer (`numbers.Integral`), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    """A Python or numpy real number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_axis(axis):
    """`axis` must be one integer, Python or numpy (as Keras takes it; a
    bool is not one); returned as a Python int, which `get_config` saves."""
    if not _is_integer(axis):
        raise TypeError(
            "`axis` must be a single integer channel axis (e.g. -1 for "
            f"channels_last, 1 for channels_first). Received: axis={axis!r}"
        )
    return int(axis)


def check_momentum(name, momentum):
    """A momentum (`momentum`, `renorm_momentum`): a number in [0, 1],
    returned as a float."""
    if not _is_real(momentum) or not 0.0 <= float(momentum) <= 1.0:
        raise ValueError(
            f"`{name}` must be a number in [0, 1] (the weight of the old average). "
            f"Received: {name}={momentum!r}")
    return float(momentum)


def check_epsilon(epsilon):
    """ε: a finite number > 0, returned as a float."""
    if not _is_real(epsilon) or not 0.0 < float(epsilon) < math.inf:
        raise ValueError(
            "`epsilon` must be a finite number > 0 (added to the variance so that "
            f"a constant channel does not divide by zero). Received: epsilon={epsilon!r}"
        )
    return float(epsilon)


def _one_of(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


def check_variance_correction(variance_correction):
    return _one_of("variance_correction", variance_correction, VARIANCE_CORRECTIONS)


def check_synchronized(synchronized):
    """Synchronized statistics need `tf.distribute`: TensorFlow only."""
    if synchronized and keras.backend.backend() != "tensorflow":
        raise ValueError(
            "`synchronized=True` needs the TensorFlow backend "
            f"(current backend: {keras.backend.backend()!r})."
        )
    return bool(synchronized)


def check_renorm_clipping(renorm, renorm_clipping):
    """The clipping as `bn_zoo.layers.renorm.check_clipping` returns it with
    `renorm`, else None; clipping without `renorm` is refused."""
    if renorm:
        return renorm_lib.check_clipping(renorm_clipping)
    if renorm_clipping:
        raise ValueError(
            "`renorm_clipping` applies only with `renorm=True`. Received: "
            f"renorm=False, renorm_clipping={renorm_clipping!r}"
        )
    return None


def check_virtual_batch_size(virtual_batch_size, synchronized):
    """None or a positive integer, and not with `synchronized`."""
    if virtual_batch_size is None:
        return None
    if not _is_integer(virtual_batch_size) or virtual_batch_size < 1:
        raise ValueError(
            "`virtual_batch_size` must be a positive integer that divides "
            "the training batch size, or None. "
            f"Received: virtual_batch_size={virtual_batch_size!r}"
        )
    if synchronized:
        raise ValueError(
            "`virtual_batch_size` cannot be combined with `synchronized=True`: "
            "ghost batches are parts of one replica's batch, synchronized "
            "statistics span all replicas. Use one or the other."
        )
    return int(virtual_batch_size)


def check_zero_debias(zero_debias, momentum, renorm, renorm_momentum):
    """Zero-debiasing divides by 1 − momentum^t: no momentum in use may be 1."""
    if zero_debias and (momentum == 1.0 or (renorm and renorm_momentum == 1.0)):
        raise ValueError(
            "`zero_debias=True` divides by 1 − momentum^t, which is 0 for a "
            "momentum of 1 (an average that never moves). Use a momentum < 1."
        )
    return bool(zero_debias)


def check_inference_statistics(inference_statistics):
    return _one_of("inference_statistics", inference_statistics, INFERENCE_STATISTICS)


def channel_axis(layer, input_shape):
    """`layer.axis` checked against `input_shape`.

    Returns:
        `(axis, channels)`: the axis in [1, rank) and its size.

    Raises:
        ValueError: a rank below 2, an axis out of range or on the batch, or a
            channel axis of unknown size.
    """
    rank = len(input_shape)
    if rank < 2:
        raise ValueError(
            f"{layer.__class__.__name__} '{layer.name}' needs inputs of rank "
            ">= 2, (batch, ..., channels), to have channels to normalize. "
            f"Received input shape {tuple(input_shape)}."
        )
    if not -rank <= layer.axis < rank:
        raise ValueError(
            f"`axis={layer.axis}` is out of range for inputs of rank {rank} "
            f"(shape {tuple(input_shape)}). Use an axis in [-{rank}, {rank - 1}]"
            ", e.g. -1 for channels_last or 1 for channels_first."
        )
    axis = layer.axis % rank
    if axis == 0:
        raise ValueError(
            f"`axis={layer.axis}` is the batch axis of inputs of shape "
            f"{tuple(input_shape)}; batch normalization normalizes over the "
            "batch. Use the channel axis (-1 or 1)."
        )
    channels = input_shape[axis]
    if channels is None:
        raise ValueError(
            f"The channel axis {layer.axis} of inputs {tuple(input_shape)} must "
            "have a known size to create one γ, β pair per channel."
        )
    return axis, channels


def flag(inference_statistics):
    """The value of `use_population_statistics` for a choice of statistics."""
    return 1.0 if inference_statistics == "population" else 0.0


def statistics_of(variable):
    """The statistics that `use_population_statistics` names, or None inside
    a trace, where the variable has no value to read."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            return None
    try:
        value = float(ops.convert_to_numpy(variable))
    except Exception:  # a traced value on another backend
        return None
    return "population" if value > 0.5 else "moving"
