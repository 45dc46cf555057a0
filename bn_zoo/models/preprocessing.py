"""Input scaling of the zoo's networks.

Each registered model names its mode in `model_info(name).preprocessing`:

- `"mnist"`: pixel values in [0, 255] to [0, 1] (x / 255), for the MLPs of
  Section 4.1.
- `"inception"`: pixel values in [0, 255] to [-1, 1] (x / 127.5 - 1), the
  scaling of the TensorFlow Inception models, for the networks of Section 4.2.

`preprocess_input` is built from `keras.ops` only, so it works eagerly, inside
a `tf.data` map, a `tf.function` or a Keras layer.
"""

from keras import ops

PREPROCESSING_MODES = ("mnist", "inception")


def preprocess_input(images, mode):
    """Scales raw pixel values (0-255) as the network of `mode` expects.

    Args:
        images: A tensor or array of pixel values in [0, 255], of any shape
            and any integer or floating dtype.
        mode: `"mnist"` (x / 255, range [0, 1]) or `"inception"`
            (x / 127.5 - 1, range [-1, 1]).

    Returns:
        A float tensor (float32 unless `images` is already floating) of the
        same shape.
    """
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
    return x / 127.5 - 1.0
