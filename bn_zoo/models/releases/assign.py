"""Building the zoo's BN-Inception for a release, and filling it from another
framework's variables, all or nothing."""

import numpy as np
from keras import layers

from bn_zoo.layers import BatchNormalization
from bn_zoo.models import catalogue

# The catalogue model the releases' weights are registered for.
MODEL = "bn_inception"


class ConversionError(ValueError):
    """A release file that does not convert: wrong network, truncated, corrupt."""


def build(variant, factory_kwargs):
    """(model, finish) for a converter: the catalogue's "bn_inception"
    network of `variant`, built whole with `factory_kwargs` (the arguments of
    `create_model("bn_inception", ...)` but `weights`), and the function that
    turns the filled model into the one asked for (its `features=` model, if
    any)."""
    kwargs = dict(factory_kwargs, variant=variant)
    features = kwargs.pop("features", None)
    builder = catalogue.model_info(MODEL).factory
    arguments = builder.arguments(kwargs)
    names = builder.features.names(features, **arguments) if features is not None else ()
    model = builder(**kwargs)

    def finish(filled):
        return builder.features.model(filled, names, **arguments) if names else filled

    return model, finish


def units(model):
    """{unit name: (conv layer, BN layer or None)} for every convolution of a
    zoo Inception model, named `{unit}_conv` / `{unit}_bn`, in model order."""
    found = {}
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.SeparableConv2D)) and layer.name.endswith("_conv"):
            unit = layer.name[: -len("_conv")]
            try:
                bn = model.get_layer(f"{unit}_bn")
            except ValueError:
                bn = None
            found[unit] = (layer, bn)
    return found


def assign(model, values, source):
    """Assigns {(layer name, attribute): array} to `model`, all or nothing.

    Every value is checked against its variable's shape before any is
    assigned; `source` names the file in errors.

    Raises:
        ConversionError: a value whose shape differs from the model's.
    """
    plan = []
    for (layer_name, attribute), value in values.items():
        variable = getattr(model.get_layer(layer_name), attribute)
        value = np.asarray(value, dtype=np.float32)
        if tuple(variable.shape) != value.shape:
            raise ConversionError(
                f"{source}: {layer_name}.{attribute} has shape {value.shape}, the "
                f"model needs {tuple(variable.shape)}. The file is not the "
                "network this converter reads, or the model arguments differ."
            )
        plan.append((variable, value))
    missing = {
        id(v) for layer in model.layers for v in _convertible(layer)
    } - {id(v) for v, _ in plan}
    if missing:
        names = [v.path for layer in model.layers for v in _convertible(layer) if id(v) in missing]
        raise ConversionError(f"{source}: nothing to convert into {names[:5]}.")
    for variable, value in plan:
        variable.assign(value)


def _convertible(layer):
    """The variables a converter must fill (not BN's statistics switch)."""
    if isinstance(layer, BatchNormalization):
        return [v for v in (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance) if v is not None]
    return list(layer.weights)


def check_classes(kwargs, allowed, release):
    """`classes` of a converter's factory kwargs, checked against the
    release's classifier when include_top is on."""
    classes = kwargs.get("classes", 1000)
    if kwargs.get("include_top", True) and classes not in allowed:
        raise ValueError(
            f"The {release} classifier converts to classes in {allowed}. "
            f"Received: classes={classes!r}. Use include_top=False for your own "
            "classifier."
        )
    return classes
