"""Any Keras model with bn_zoo's BatchNormalization in place of Keras' (a swap).

    model = keras.applications.MobileNetV2(weights="imagenet")
    model = bn_zoo.layers.convert_batch_normalization(model)
    bn_zoo.population.estimate(model, train_batches, num_batches=100)  # Algorithm 2

The converted model is the same functional graph, layer for layer and name
for name, with every `keras.layers.BatchNormalization` replaced by a
`bn_zoo.layers.BatchNormalization` holding the same γ, β and moving
statistics. Its inference outputs are those of the original model.
"""

import keras

from bn_zoo.layers import arguments, keras_layout
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
    if _is_functional(model):
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


def _is_functional(model):
    # Keras exports no `Functional` class: a functional model is a
    # keras.Model whose class derives from one of that name (also a
    # keras.Model subclass called with inputs and outputs).
    return isinstance(model, keras.Model) and any(
        cls.__name__ == "Functional" and cls.__module__.startswith("keras.")
        for cls in type(model).__mro__
    )


def _check_model(model, what):
    if not (_is_functional(model) or isinstance(model, keras.Sequential)):
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
    return _is_functional(layer) or isinstance(layer, keras.Sequential)


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
    keras_layout.mark_caught_up(new)
