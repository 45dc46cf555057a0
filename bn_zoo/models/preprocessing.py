"""Input scaling of the zoo's networks.

Every network takes scaled pixels, as `keras.applications` models do. Each
registered model names its mode in `model_info(name).preprocessing`, and
registered weights may name their own (`weights.preprocessing_of`):

- `"mnist"`: pixel values in [0, 255] to [0, 1] (x / 255), for the MLPs of
  Section 4.1.
- `"inception"`: pixel values in [0, 255] to [-1, 1] (x / 127.5 - 1), the
  scaling of the TensorFlow Inception models, for the networks of Section 4.2
  and TF-slim's `inception_v2` weights.
- `"caffe_bn_inception"`: RGB pixel values in [0, 255] to BGR minus the
  per-channel means (104, 117, 128), as the Caffe BN-Inception release and its
  PyTorch port (`bninception` of the pretrained-models package) expect.

Two ways to feed raw 0-255 pixels:

    x = bn_zoo.preprocess_input(pixels, model="bn_mlp", weights="mnist")
    model = bn_zoo.create_model("bn_mlp", weights="mnist", include_preprocessing=True)

The second puts `PreprocessInput` inside the model (as Keras' EfficientNetV2
does), which then takes 0-255 pixels directly. Neither the networks nor
`preprocess_input` inspect the values at run time: raw pixels fed to a model
built without preprocessing give wrong answers without a warning (a check
would cost a reduction per batch, and values that look raw can be legitimate
inputs), so use one of the two.

`preprocess_input` is built from `keras.ops` only, so it works eagerly, inside
a `tf.data` map, a `tf.function` or a Keras layer.
"""

import keras
from keras import ops

PREPROCESSING_MODES = ("mnist", "inception", "caffe_bn_inception")
# BGR means of the Caffe BN-Inception release (pretrained-models' settings).
CAFFE_BGR_MEANS = (104.0, 117.0, 128.0)


def mode_of(model, weights=None):
    """The mode of registered model `model` with `weights` (a registered
    weights name, whose own mode wins; a path or None: the model's)."""
    from bn_zoo.models import registry, weights as weights_lib

    info = registry.model_info(model)
    if isinstance(weights, str) and weights in info.weights:
        return weights_lib.preprocessing_of(model, weights)
    return info.preprocessing


def preprocess_input(images, mode=None, *, model=None, weights=None):
    """Scales raw pixel values (0-255) as a network expects.

    Args:
        images: A tensor or array of pixel values in [0, 255], of any shape
            and any integer or floating dtype; RGB channels last for the
            image modes.
        mode: `"mnist"` (x / 255, range [0, 1]), `"inception"`
            (x / 127.5 - 1, range [-1, 1]) or `"caffe_bn_inception"` (BGR
            order, minus the means 104, 117, 128). Or None, with `model`.
        model: Instead of `mode`: a registered model name, e.g. "bn_mlp".
        weights: With `model`: its registered weights name (e.g.
            "imagenet_caffe", which has its own mode) or None.

    Returns:
        A float tensor (float32 unless `images` is already floating) of the
        same shape.

    Raises:
        ValueError: an unknown mode or model, or both or neither of `mode`
            and `model`.
    """
    if (mode is None) == (model is None):
        raise ValueError(
            "Pass either `mode` (one of "
            f"{PREPROCESSING_MODES}) or `model` (a registered name, with its "
            f"`weights`). Received: mode={mode!r}, model={model!r}"
        )
    if model is not None:
        mode = mode_of(model, weights)
    if mode not in PREPROCESSING_MODES:
        raise ValueError(
            f"Unknown preprocessing mode {mode!r}; use one of "
            f"{PREPROCESSING_MODES}, e.g. bn_zoo.model_info(name).preprocessing."
        )
    x = ops.convert_to_tensor(images)
    if "float" not in str(x.dtype):
        x = ops.cast(x, "float32")
    if mode == "mnist":
        return x / 255.0
    if mode == "caffe_bn_inception":
        return ops.flip(x, axis=-1) - ops.convert_to_tensor(CAFFE_BGR_MEANS, x.dtype)
    return x / 127.5 - 1.0


@keras.saving.register_keras_serializable(package="bn_zoo")
class PreprocessInput(keras.layers.Layer):
    """`preprocess_input(x, mode)` as the first layer of a model, so that the
    model takes raw 0-255 pixels (`include_preprocessing=True`).

    Args:
        mode: One of `PREPROCESSING_MODES`.
    """

    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(
                f"Unknown preprocessing mode {mode!r}; use one of {PREPROCESSING_MODES}."
            )
        self.mode = mode

    def call(self, inputs):
        return preprocess_input(ops.cast(inputs, self.compute_dtype), self.mode)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def preprocessing_layer(model):
    """The `PreprocessInput` layer of `model`, or None."""
    for layer in model.layers:
        if isinstance(layer, PreprocessInput):
            return layer
    return None
