"""Keras' BatchNormalization variables, read into bn_zoo's layer.

`keras.layers.BatchNormalization` saves γ (if `scale`), β (if `center`), the
moving mean and the moving variance: 4 variables at most, 2 fewer than any
bn_zoo layout. `BatchNormalization.load_own_variables` tries
`load_keras_variables` first, so a `.weights.h5` file saved by an
architecture built with Keras' layer loads into the same architecture built
with ours (or swapped by `bn_zoo.layers.convert_batch_normalization`).

This module sits below `batch_normalization.py` (it imports only `moving`),
so the layer reads Keras' layout without an import circle.
"""

from bn_zoo.layers import moving


def mark_caught_up(layer):
    """Marks `layer`'s moving statistics as caught up (no warm-up, no
    zero-debiasing): for statistics trained elsewhere, as for files that did
    not save the update count."""
    counter = getattr(layer, "moving_statistics_updates", None)
    if counter is not None:
        counter.assign(moving.UNKNOWN_UPDATES)


def load_keras_variables(layer, store):
    """Loads `keras.layers.BatchNormalization`'s saved variables into `layer`.

    The population statistics are set to the moving ones, as by
    `convert_batch_normalization`.

    Args:
        layer: A bn_zoo `BatchNormalization` layer.
        store: The layer's entry of a weights file ({"0": array, ...}).

    Returns:
        True if `store` had Keras' layout and was loaded, else False (the
        caller then loads its own layouts, or raises Keras' error).
    """
    trainable = layer._trainable_variables
    if not layer.built or len(store.keys()) != len(trainable) + 2:
        return False
    values = [store[f"{i}"] for i in range(len(trainable) + 2)]
    channels = tuple(layer.moving_mean.shape)
    if any(tuple(value.shape) != channels for value in values):
        return False
    for variable, value in zip(trainable, values):
        variable.assign(value)
    mean, variance = values[-2:]
    for target, value in (
        (layer.moving_mean, mean),
        (layer.moving_variance, variance),
        (layer.population_mean, mean),
        (layer.population_variance, variance),
    ):
        target.assign(value)
    mark_caught_up(layer)
    return True
