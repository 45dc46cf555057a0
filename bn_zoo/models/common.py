"""Argument handling shared by the zoo's factories (as `keras.applications`)."""

from keras import activations, backend, layers
from keras.src.applications import imagenet_utils
from keras.src.ops import operation_utils

from bn_zoo.models import weights as weights_lib

POOLINGS = (None, "avg", "max")


def check_common_arguments(
    model_name, include_top, weights, pooling, classes, classifier_activation
):
    """Validates the `keras.applications` arguments; returns the registered
    weights entry named by `weights`, if any."""
    if not isinstance(include_top, bool):
        raise TypeError(
            f"`include_top` must be True or False. Received: {include_top!r}"
        )
    entry = weights_lib.validate_weights_argument(
        model_name, weights, include_top, classes
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
        if weights is not None:
            imagenet_utils.validate_activation(classifier_activation, weights)
    return entry


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
    """`obtain_input_shape` of keras.applications for channels_last images,
    taking the shape of `input_tensor` when `input_shape` is not given."""
    if backend.image_data_format() != "channels_last":
        raise ValueError(
            "bn_zoo's Inception networks are channels_last only; call "
            "keras.config.set_image_data_format('channels_last')."
        )
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is not None:
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
    return imagenet_utils.obtain_input_shape(
        input_shape,
        default_size=default_size,
        min_size=min_size,
        data_format="channels_last",
        require_flatten=include_top,
        weights=None,
    )


def preprocessing(x, registry_name, weights, include_preprocessing, mode=None):
    """`x`, or `x` through a `PreprocessInput` layer named "preprocessing"
    with the mode of the registered weights, else `mode`, else the model's."""
    from bn_zoo.models.preprocessing import PreprocessInput, mode_of  # (import cycle)

    if not isinstance(include_preprocessing, bool):
        raise TypeError(
            "`include_preprocessing` must be True (the model takes raw 0-255 "
            "pixels) or False (scaled inputs, see bn_zoo.preprocess_input). "
            f"Received: {include_preprocessing!r}"
        )
    if not include_preprocessing:
        return x
    mode = _registered_mode(registry_name, weights) or mode or mode_of(registry_name, weights)
    return PreprocessInput(mode, name="preprocessing")(x)


def _registered_mode(registry_name, weights):
    known = weights_lib.registered_weights(registry_name)
    if isinstance(weights, str) and weights in known:
        return weights_lib.preprocessing_of(registry_name, weights)
    return None


def model_input(input_tensor, input_shape):
    """(tensor to build on, inputs of the Functional model), as resnet.py."""
    if input_tensor is None:
        img_input = layers.Input(shape=input_shape)
        return img_input, img_input
    if not backend.is_keras_tensor(input_tensor):
        img_input = layers.Input(tensor=input_tensor, shape=input_shape)
    else:
        img_input = input_tensor
    inputs = operation_utils.get_source_inputs(input_tensor)
    return img_input, inputs[0] if len(inputs) == 1 else inputs
