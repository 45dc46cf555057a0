"""Argument handling shared by the zoo's architectures (as `keras.applications`).

Architectures take plain arguments: nothing here knows the catalogue or
weights files (`bn_zoo.models.hub` checks `weights=` before it calls an
architecture).
"""

import warnings

import keras
from keras import activations, backend, layers

from bn_zoo.models.input_scaling import PreprocessInput, check_mode

POOLINGS = (None, "avg", "max")


def check_common_arguments(include_top, pooling, classes, classifier_activation):
    """Validates the `keras.applications` arguments other than `weights`."""
    if not isinstance(include_top, bool):
        raise TypeError(
            f"`include_top` must be True or False. Received: {include_top!r}"
        )
    if pooling not in POOLINGS:
        raise ValueError(
            f"`pooling` must be one of {POOLINGS} (it applies only with "
            f"include_top=False). Received: pooling={pooling!r}"
        )
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(
            f"`classes` must be a positive integer. Received: classes={classes!r}"
        )
    if include_top:
        try:
            activations.get(classifier_activation)
        except ValueError as error:
            raise ValueError(
                "`classifier_activation` must be None, a Keras activation name "
                f"or a callable. Received: {classifier_activation!r}"
            ) from error


def check_batch_norm_kwargs(batch_norm_kwargs):
    """A copy of `batch_norm_kwargs` (a dict merged into every BN layer)."""
    if batch_norm_kwargs is None:
        return {}
    if not isinstance(batch_norm_kwargs, dict):
        raise TypeError(
            "`batch_norm_kwargs` must be a dict of bn_zoo.layers."
            "BatchNormalization arguments, e.g. {'momentum': 0.9}. "
            f"Received: {batch_norm_kwargs!r}"
        )
    reserved = {"name", "axis"} & set(batch_norm_kwargs)
    if reserved:
        raise ValueError(
            f"`batch_norm_kwargs` must not set {sorted(reserved)}: the factory "
            "names every layer and normalizes the channel axis (-1)."
        )
    return dict(batch_norm_kwargs)


def image_input_shape(input_shape, input_tensor, default_size, min_size, include_top):
    """The (height, width, channels) input shape of a channels_last image
    network, as `keras.applications` computes it: `input_shape`, else the
    shape of `input_tensor`, else (default_size, default_size, 3) with the
    classifier and (None, None, 3) without.

    Raises:
        ValueError: not channels_last; a shape that is not 3-D, has unknown
            channels or a side below `min_size`; a dynamic side with
            `include_top=True` (the classifier needs a static shape).
    """
    if backend.image_data_format() != "channels_last":
        raise ValueError(
            "bn_zoo's Inception networks are channels_last only; call "
            "keras.config.set_image_data_format('channels_last')."
        )
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        return (default_size, default_size, 3) if include_top else (None, None, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels). Received: "
            f"input_shape={input_shape}"
        )
    if input_shape[-1] is None:
        raise ValueError(
            "The number of input channels must be known. Received: "
            f"input_shape={input_shape}"
        )
    if input_shape[-1] not in (1, 3):
        warnings.warn(
            "This model usually expects 1 or 3 input channels. However, it was "
            f"passed an input_shape with {input_shape[-1]} input channels.",
            stacklevel=3,
        )
    if any(side is not None and side < min_size for side in input_shape[:2]):
        raise ValueError(
            f"Input size must be at least {min_size}x{min_size}; Received: "
            f"input_shape={input_shape}"
        )
    if include_top and None in input_shape:
        raise ValueError(
            "If `include_top` is True, you should specify a static `input_shape`. "
            f"Received: input_shape={input_shape}"
        )
    return input_shape


def preprocessing(x, include_preprocessing, mode):
    """`x`, or `x` through a `PreprocessInput` layer named "preprocessing"
    with mode `mode` when `include_preprocessing` is True."""
    if not isinstance(include_preprocessing, bool):
        raise TypeError(
            "`include_preprocessing` must be True (the model takes raw 0-255 "
            "pixels) or False (scaled inputs, see bn_zoo.preprocess_input). "
            f"Received: {include_preprocessing!r}"
        )
    if not include_preprocessing:
        return x
    check_mode(mode)
    return PreprocessInput(mode, name="preprocessing")(x)


def model_input(input_tensor, input_shape):
    """(tensor to build on, inputs of the functional model), as resnet.py."""
    if input_tensor is None:
        img_input = layers.Input(shape=input_shape)
        return img_input, img_input
    if not backend.is_keras_tensor(input_tensor):
        img_input = layers.Input(tensor=input_tensor, shape=input_shape)
    else:
        img_input = input_tensor
    inputs = keras.utils.get_source_inputs(input_tensor)
    return img_input, inputs[0] if len(inputs) == 1 else inputs
