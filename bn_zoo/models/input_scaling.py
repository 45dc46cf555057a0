"""Input scaling of the zoo's networks, by mode: the function and the layer.

Every network takes scaled pixels, as `keras.applications` models do. The
modes:

- `"mnist"`: pixel values in [0, 255] to [0, 1] (x / 255), for the MLPs of
  Section 4.1.
- `"inception"`: pixel values in [0, 255] to [-1, 1] (x / 127.5 - 1), the
  scaling of the TensorFlow Inception models, for the networks of Section 4.2
  and TF-slim's `inception_v2` weights.
- `"caffe_bn_inception"`: RGB pixel values in [0, 255] to BGR minus the
  per-channel means (104, 117, 128), as the Caffe BN-Inception release and its
  PyTorch port (`bninception` of the pretrained-models package) expect.
- `"imagenet_mean_std"`: (x / 255 - mean) / std per RGB channel, with
  ImageNet's mean (0.485, 0.456, 0.406) and standard deviation (0.229, 0.224,
  0.225): torchvision's and timm's default, `keras.applications`' "torch"
  mode.
- `"caffe_resnet"`: RGB to BGR minus ImageNet's BGR means (103.939, 116.779,
  123.68), no scaling: the Caffe ResNet (and VGG) releases,
  `keras.applications`' "caffe" mode.

`keras.applications.imagenet_utils.preprocess_input` calls the last two
"torch" and "caffe"; here "caffe" alone would be ambiguous between the two
Caffe releases' means, so the names say which.

`scale` works on numpy arrays in numpy (numpy in, numpy out) and on anything
else with `keras.ops`, so it runs eagerly, inside a `tf.data` map, a
`tf.function` or a Keras layer. `PreprocessInput` puts it inside a model
(`include_preprocessing=True`). Which mode a registered model or its weights
expect is the catalogue's business (`bn_zoo.preprocess_input(x, model=...)`);
this module knows only the modes.
"""

import keras
import numpy as np
from keras import ops

PREPROCESSING_MODES = (
    "mnist", "inception", "caffe_bn_inception", "imagenet_mean_std", "caffe_resnet")
# BGR means of the Caffe BN-Inception release (pretrained-models' settings).
CAFFE_BGR_MEANS = (104.0, 117.0, 128.0)
# ImageNet's RGB mean and standard deviation on the 0-1 scale (torchvision).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ImageNet's BGR means on the 0-255 scale (the Caffe ResNet releases).
CAFFE_RESNET_BGR_MEANS = (103.939, 116.779, 123.68)
# keras.applications' names of the same scalings, for the error message.
_KERAS_NAMES = {"torch": "imagenet_mean_std", "caffe": "caffe_resnet", "tf": "inception"}


def check_mode(mode):
    """Raises a ValueError naming the modes unless `mode` is one of them."""
    if isinstance(mode, str) and mode in PREPROCESSING_MODES:
        return
    hint = ""
    if isinstance(mode, str) and mode in _KERAS_NAMES:
        hint = (f" keras.applications' mode {mode!r} is bn_zoo's "
                f"{_KERAS_NAMES[mode]!r}.")
    raise ValueError(
        f"Unknown preprocessing mode {mode!r}; use one of "
        f"{PREPROCESSING_MODES}, e.g. bn_zoo.model_info(name).preprocessing.{hint}"
    )


def scale(images, mode):
    """Scales raw pixel values (0-255) as mode `mode` says.

    Args:
        images: A numpy array, or a tensor of any backend, of pixel values in
            [0, 255], of any shape and any integer or floating dtype; RGB
            channels last for the image modes.
        mode: One of `PREPROCESSING_MODES`.

    Returns:
        The type it was given: a numpy array for a numpy array (or numpy
        scalar), else a tensor; float32 unless `images` is already floating;
        the same shape.

    Raises:
        ValueError: an unknown mode.
    """
    check_mode(mode)
    if isinstance(images, (np.ndarray, np.generic)):
        x = images if np.issubdtype(images.dtype, np.floating) else images.astype(np.float32)
        return _scaled(x, mode, np, lambda v: np.asarray(v, x.dtype))
    x = ops.convert_to_tensor(images)
    if "float" not in str(x.dtype):
        x = ops.cast(x, "float32")
    return _scaled(x, mode, ops, lambda v: ops.convert_to_tensor(v, x.dtype))


def _scaled(x, mode, xp, constant):
    # `xp` is numpy or keras.ops: the same arithmetic on either.
    if mode == "mnist":
        return x / constant(255.0)
    if mode == "caffe_bn_inception":
        return xp.flip(x, axis=-1) - constant(CAFFE_BGR_MEANS)
    if mode == "caffe_resnet":
        return xp.flip(x, axis=-1) - constant(CAFFE_RESNET_BGR_MEANS)
    if mode == "imagenet_mean_std":
        return (x / constant(255.0) - constant(IMAGENET_MEAN)) / constant(IMAGENET_STD)
    return x / constant(127.5) - constant(1.0)


@keras.saving.register_keras_serializable(package="bn_zoo")
class PreprocessInput(keras.layers.Layer):
    """`scale(x, mode)` as the first layer of a model, so that the model takes
    raw 0-255 pixels (`include_preprocessing=True`).

    Args:
        mode: One of `PREPROCESSING_MODES`.
    """

    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        check_mode(mode)
        self.mode = mode

    def call(self, inputs):
        return scale(ops.cast(inputs, self.compute_dtype), self.mode)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def preprocessing_layer(model):
    """The `PreprocessInput` layer among `model`'s own layers, or None
    (`preprocessing_layers` looks inside nested models too)."""
    for layer in model.layers:
        if isinstance(layer, PreprocessInput):
            return layer
    return None


def preprocessing_layers(model):
    """Every `PreprocessInput` layer of `model` at any depth (inside nested
    models, through their public `layers`), depth first in layer order; a
    list."""
    found = []
    for layer in model.layers:
        if isinstance(layer, PreprocessInput):
            found.append(layer)
        elif isinstance(getattr(layer, "layers", None), list):
            found.extend(preprocessing_layers(layer))
    return found
