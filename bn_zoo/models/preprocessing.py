"""`preprocess_input`: raw pixels scaled as a model, or its weights, expect.

Every network takes scaled pixels, as `keras.applications` models do. The
mode of a catalogued model with its weights is the `preprocessing` of their
data config (`bn_zoo.models.data_config(model, weights)`); the modes
themselves are in `input_scaling`:

- `"mnist"`: x / 255, for the MLPs of Section 4.1.
- `"inception"`: x / 127.5 - 1, for the networks of Section 4.2 and
  TF-slim's `inception_v2` weights.
- `"caffe_bn_inception"`: RGB to BGR minus the means (104, 117, 128), for
  the Caffe BN-Inception release.
- `"imagenet_mean_std"`: (x / 255 - (0.485, 0.456, 0.406)) / (0.229, 0.224,
  0.225), torchvision's and timm's (keras.applications' "torch" mode).
- `"caffe_resnet"`: RGB to BGR minus (103.939, 116.779, 123.68), the Caffe
  ResNet releases' (keras.applications' "caffe" mode).

Two ways to feed raw 0-255 pixels:

    x = bn_zoo.preprocess_input(pixels, model="bn_mlp", weights="mnist")
    model = bn_zoo.create_model("bn_mlp", weights="mnist", include_preprocessing=True)

The second puts `PreprocessInput` inside the model (as Keras' EfficientNetV2
does), which then takes 0-255 pixels directly. Neither the networks nor
`preprocess_input` inspect the values at run time: raw pixels fed to a model
built without preprocessing give wrong answers without a warning (a check
would cost a reduction per batch, and values that look raw can be legitimate
inputs), so use one of the two.
"""

from bn_zoo.models import catalogue
from bn_zoo.models.input_scaling import (  # noqa: F401  (this module's names before)
    CAFFE_BGR_MEANS,
    CAFFE_RESNET_BGR_MEANS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PREPROCESSING_MODES,
    PreprocessInput,
    preprocessing_layer,
    preprocessing_layers,
    scale,
)


def mode_of(model, weights=None):
    """The mode of catalogued model `model` with `weights`: the
    `preprocessing` of `catalogue.data_config(model, weights)` (a registered
    weights name: theirs; a path or None: the model's)."""
    return catalogue.data_config(model, weights).preprocessing


def preprocess_input(images, mode=None, *, model=None, weights=None):
    """Scales raw pixel values (0-255) as a network expects.

    Args:
        images: A numpy array or a tensor of pixel values in [0, 255], of
            any shape and any integer or floating dtype; RGB channels last
            for the image modes.
        mode: `"mnist"` (x / 255, range [0, 1]), `"inception"`
            (x / 127.5 - 1, range [-1, 1]), `"caffe_bn_inception"` (BGR
            order, minus the means 104, 117, 128), `"imagenet_mean_std"`
            ((x / 255 - mean) / std, ImageNet's RGB mean and std) or
            `"caffe_resnet"` (BGR order, minus 103.939, 116.779, 123.68).
            Or None, with `model`.
        model: Instead of `mode`: a catalogued model name, e.g. "bn_mlp".
        weights: With `model`: its registered weights name (e.g.
            "imagenet_caffe", whose data config has its own mode), a path,
            or None (the model's data config).

    Returns:
        The type it was given, as `keras.applications`' preprocess_input:
        a numpy array for a numpy array, a tensor for a tensor (eagerly,
        inside a `tf.data` map, a `tf.function` or a Keras layer); float32
        unless `images` is already floating; the same shape.

    Raises:
        ValueError: an unknown mode, model or weights name, or both or
            neither of `mode` and `model`.
    """
    if (mode is None) == (model is None):
        raise ValueError(
            "Pass either `mode` (one of "
            f"{PREPROCESSING_MODES}) or `model` (a registered name, with its "
            f"`weights`). Received: mode={mode!r}, model={model!r}"
        )
    if model is not None:
        mode = mode_of(model, weights)
    return scale(images, mode)
