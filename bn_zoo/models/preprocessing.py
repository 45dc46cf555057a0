"""Input scaling of the zoo's networks.

Each registered model names its mode in `model_info(name).preprocessing`:

- `"mnist"`: pixel values in [0, 255] to [0, 1] (x / 255), for the MLPs of
  Section 4.1.
- `"inception"`: pixel values in [0, 255] to [-1, 1] (x / 127.5 - 1), the
  scaling of the TensorFlow Inception models, for the networks of Section 4.2
  and TF-slim's `inception_v2` weights.
- `"caffe_bn_inception"`: RGB pixel values in [0, 255] to BGR minus the
  per-channel means (104, 117, 128), as the Caffe BN-Inception release and its
  PyTorch port (`bninception` of the pretrained-models package) expect.

`preprocess_input` is built from `keras.ops` only, so it works eagerly, inside
a `tf.data` map, a `tf.function` or a Keras layer.
"""

from keras import ops

PREPROCESSING_MODES = ("mnist", "inception", "caffe_bn_inception")
# BGR means of the Caffe BN-Inception release (pretrained-models' settings).
CAFFE_BGR_MEANS = (104.0, 117.0, 128.0)


def preprocess_input(images, mode):
    """Scales raw pixel values (0-255) as the network of `mode` expects.

    Args:
        images: A tensor or array of pixel values in [0, 255], of any shape
            and any integer or floating dtype; RGB channels last for the
            image modes.
        mode: `"mnist"` (x / 255, range [0, 1]), `"inception"`
            (x / 127.5 - 1, range [-1, 1]) or `"caffe_bn_inception"` (BGR
            order, minus the means 104, 117, 128).

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
    if mode == "caffe_bn_inception":
        return ops.flip(x, axis=-1) - ops.convert_to_tensor(CAFFE_BGR_MEANS, x.dtype)
    return x / 127.5 - 1.0
