"""Any Keras model with bn_zoo's BatchNormalization in place of Keras'.

    model = keras.applications.MobileNetV2(weights="imagenet")
    model = bn_zoo.layers.convert_batch_normalization(model)
    bn_zoo.population.estimate(model, train_batches, num_batches=100)  # Algorithm 2

The converted model is the same functional graph, layer for layer and name
for name, with every `keras.layers.BatchNormalization` replaced by a
`bn_zoo.layers.BatchNormalization` holding the same γ, β and moving
statistics. Its inference outputs are those of the original model.
"""

import keras
from keras.src.models.functional import Functional

from bn_zoo.layers import arguments
from bn_zoo.layers.batch_normalization import BatchNormalization

# The constructor arguments of keras.layers.BatchNormalization that ours
# takes with the same meaning; the base-layer ones (name, dtype, trainable)
# come with them.
_SHARED_ARGUMENTS = (
    "name", "trainable", "dtype", "axis", "momentum", "epsilon", "center", "scale",
    "beta_initializer", "gamma_initializer", "moving_mean_initializer",
    "moving_variance_initializer", "beta_regularizer", "gamma_regularizer",
    "beta_constraint", "gamma_constraint", "synchronized",
)


def convert_batch_normalization(model, variance_correction="biased"):
    """Returns `model` with bn_zoo's BatchNormalization in place of Keras'.

    Every `keras.layers.BatchNormalization` (not a subclass) becomes a
    `bn_zoo.layers.BatchNormalization` with the same name and arguments
    (`axis`, `momentum`, `epsilon`, `center`, `scale`, initializers,
    regularizers, constraints, `synchronized`, `trainable`, dtype policy) and
    the same γ, β, moving mean and moving variance. Its population statistics
    start equal to the moving ones, and inference uses the moving ones
    (`inference_statistics="moving"`), so the converted model's inference
    outputs are the original's; `bn_zoo.population.estimate` then gives it
    Algorithm 2's population statistics.

    Every other layer is cloned from its config with its weights copied, as
    `keras.models.clone_model` does, so the two models share no variable.
    Nested functional and Sequential models are converted recursively, and a
    layer (or nested model) shared by several calls stays shared in the
    converted model. The result is not compiled.

    **Variance correction.** Keras stores the biased variance σ²_B in
    `moving_variance`. With the default `variance_correction="biased"` the
    converted layers go on doing so, so training the converted model updates
    its statistics exactly as Keras would. `"unbiased"` (the paper's
    m'/(m'−1)·σ²_B, Algorithm 2 step 10) applies to the later updates and to
    the population variance; the moving variance carried over from Keras
    stays as it was. Inference outputs right after the conversion are the
    same either way.

    Args:
        model: A built functional or Sequential `keras.Model`, e.g. one of
            `keras.applications`.
        variance_correction: `"biased"` (default, as Keras) or `"unbiased"`
            (as the paper), for every converted layer.

    Returns:
        A new, uncompiled functional (or Sequential) model.

    Raises:
        TypeError: `model` is not a functional or Sequential Keras model
            (a subclassed model has no graph to rebuild).
        ValueError: the model is not built; `variance_correction` is unknown;
            a Keras BatchNormalization sits inside a layer that is neither a
            functional nor a Sequential model (the converter cannot rebuild
            it), or uses `renorm=True`.
    """
    _check_model(model, "model")
    arguments.check_variance_correction(variance_correction)
    _refuse_unreachable(model)
    pairs = []

    def clone(layer):
        if _is_keras_batch_normalization(layer):
            new = BatchNormalization(
                variance_correction=variance_correction, **_arguments(layer)
            )
        else:
            new = layer.__class__.from_config(layer.get_config())
        pairs.append((layer, new))
        return new

    input_tensors = None
    if isinstance(model, Functional):
        # Inputs named as the original's, so that dict inputs still fit.
        input_tensors = keras.tree.map_structure(
            lambda t: keras.Input(
                batch_shape=t.shape, dtype=t.dtype, name=t._keras_history.operation.name
            ),
            model.input,
        )
    converted = keras.models.clone_model(
        model, input_tensors=input_tensors, clone_function=clone, recursive=True
    )
    for old, new in pairs:
        if isinstance(new, BatchNormalization) and _is_keras_batch_normalization(old):
            _carry_statistics(old, new)
        else:
            new.set_weights(old.get_weights())
    return converted


def _check_model(model, what):
    if not isinstance(model, (Functional, keras.Sequential)):
        raise TypeError(
            f"convert_batch_normalization() takes a functional or Sequential "
            f"keras.Model; {what} is a {type(model).__name__}. A subclassed model "
            "has no graph to rebuild: build it functionally, or create its "
            "bn_zoo.layers.BatchNormalization layers directly."
        )
    if not model.built:
        raise ValueError(
            f"{what} ('{model.name}') is not built: give it an input shape "
            "(keras.Input, or call build) before converting it."
        )


def _is_keras_batch_normalization(layer):
    # Subclasses may compute something else: they are refused, not replaced.
    return type(layer) is keras.layers.BatchNormalization


def _is_graph(layer):
    return isinstance(layer, (Functional, keras.Sequential))


def _refuse_unreachable(model):
    """Refuses Keras BN layers the clone cannot replace, before any work."""
    for layer in model._flatten_layers(include_self=False, recursive=False):
        if _is_graph(layer):
            _check_model(layer, f"the nested model '{layer.name}'")
            _refuse_unreachable(layer)
            continue
        if _is_keras_batch_normalization(layer):
            if getattr(layer, "renorm", False):
                raise ValueError(
                    f"Layer '{layer.name}' uses renorm=True: its renorm statistics "
                    "(renorm_mean, renorm_stddev) have no counterpart in "
                    "bn_zoo.layers.BatchNormalization, so it is not converted. "
                    "Convert a model without renorm."
                )
            continue
        inner = [
            l.name
            for l in layer._flatten_layers(include_self=False)
            if isinstance(l, keras.layers.BatchNormalization)
        ]
        if inner or isinstance(layer, keras.layers.BatchNormalization):
            what = "is a subclass of" if not inner else "contains"
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) {what} "
                f"keras.layers.BatchNormalization{' ' + str(inner) if inner else ''}, "
                "which convert_batch_normalization() cannot replace: it rebuilds "
                "functional and Sequential graphs only. Build that part as a "
                "functional model, or use bn_zoo.layers.BatchNormalization in it."
            )


def _arguments(layer):
    config = layer.get_config()
    return {key: config[key] for key in _SHARED_ARGUMENTS if key in config}


def _carry_statistics(old, new):
    if old.scale:
        new.gamma.assign(old.gamma.value)
    if old.center:
        new.beta.assign(old.beta.value)
    for target, source in (
        (new.moving_mean, old.moving_mean),
        (new.moving_variance, old.moving_variance),
        (new.population_mean, old.moving_mean),
        (new.population_variance, old.moving_variance),
    ):
        target.assign(source.value)
    new.inference_statistics = "moving"
    _mark_caught_up(new)


def _mark_caught_up(layer):
    # Statistics trained elsewhere count as caught up (no warm-up, no
    # zero-debiasing), as for files that did not save the update count.
    counter = getattr(layer, "moving_statistics_updates", None)
    if counter is not None:
        from bn_zoo.layers import moving

        counter.assign(moving.UNKNOWN_UPDATES)


def load_keras_variables(layer, store):
    """Loads `keras.layers.BatchNormalization`'s saved variables into `layer`.

    Keras saves γ (if `scale`), β (if `center`), the moving mean and the
    moving variance: 4 variables at most, 2 fewer than any bn_zoo layout.
    `BatchNormalization.load_own_variables` calls this first, so a weights
    file (`.weights.h5`) saved by an architecture built with Keras' layer
    loads into the same architecture built with ours (or converted by
    `convert_batch_normalization`). The population statistics are set to the
    moving ones, as by the conversion.

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
    _mark_caught_up(layer)
    return True
