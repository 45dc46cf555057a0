"""Export formats, their options, and the serving network of the portable formats.

`saved_model` is TensorFlow Serving's format (`bn_zoo.export.signatures`).
`onnx` (run by ONNX Runtime) and `litert` (LiteRT, formerly TensorFlow Lite,
run by `ai_edge_litert`) are single files written by Keras' own exporters
(`model.export(format="onnx" | "litert")`, built on tf2onnx and LiteRT's
converter), from the Keras model `serving_model` returns: the same
computation as the SavedModel's `serving_default` signature, with the same
names,

    images [batch, height, width, channels] float32, pixel values in [0, 255]
      -> probabilities [batch, classes] float32,
         classes [batch, k] int64 (top-k, best first), scores [batch, k] float32

The class names are not outputs (the outputs stay numeric) but metadata of
each file, with a `labels.txt` beside (`bn_zoo.export.class_names`).

Neither format has a string input, so they have no `image_bytes`. Neither
has an assertion op either: `ImagesCheck` gives both the input check of
`serving_default` (shape, a non-empty batch, finite pixel values in
[0, 255]) as an op that fails on purpose, a gather out of bounds named
`CHECK_NAME` (see docs/export.md for the messages each runtime gives).
"""

import importlib

import keras

from bn_zoo.models.input_scaling import PreprocessInput

SAVED_MODEL = "saved_model"
ONNX = "onnx"
LITERT = "litert"
FORMATS = (SAVED_MODEL, ONNX, LITERT)
QUANTIZATIONS = ("int8",)
# The file inside EXPORT_DIR/<version>/ of the single-file formats.
FILENAMES = {ONNX: "model.onnx", LITERT: "model.tflite"}
# The modules each format needs: (import name, pip name). The `export`
# extra of pyproject.toml installs them all.
REQUIREMENTS = {
    SAVED_MODEL: (),
    ONNX: (("onnx", "onnx"), ("tf2onnx", "tf2onnx"), ("onnxruntime", "onnxruntime")),
    LITERT: (("ai_edge_litert", "ai-edge-litert"),),
}
DEFAULT_CALIBRATION_STEPS = 100
CALIBRATION_BATCH_SIZE = 32
# The name of the op that fails when the input check fails; ONNX Runtime's
# error message quotes it (a TensorFlow op name: no spaces or brackets).
CHECK_NAME = "images_must_be_a_nonempty_batch_of_finite_pixel_values_in_0_255"
PIXEL_MAX = 255.0
# float32 bit patterns, as int32: 255.0, and -0.0 (a valid pixel: -0.0 >= 0).
_PIXEL_MAX_BITS = 0x437F0000
_NEGATIVE_ZERO_BITS = -(2**31)


def check_format(export_format, quantize=None, calibration_steps=None):
    """Validates an export format and its quantization options.

    Raises:
        ValueError: an unknown format or quantization, `quantize` for a format
            other than `litert`, or a non-positive `calibration_steps`.
    """
    if export_format not in FORMATS:
        raise ValueError(
            f"Unknown export format {export_format!r}; use one of {', '.join(FORMATS)}."
        )
    if quantize is not None:
        if quantize not in QUANTIZATIONS:
            raise ValueError(
                f"Unknown quantization {quantize!r}; use one of {', '.join(QUANTIZATIONS)} "
                "(or none for float32)."
            )
        if export_format != LITERT:
            raise ValueError(
                f"quantize={quantize!r} applies to the LiteRT format only; pass "
                f"--format=litert, or drop --quantize to export {export_format} in float32."
            )
    if calibration_steps is not None and (
        isinstance(calibration_steps, bool)
        or not isinstance(calibration_steps, int)
        or calibration_steps < 1
    ):
        raise ValueError(
            f"`calibration_steps` must be a positive integer; received {calibration_steps!r}."
        )


def require_runtime(export_format):
    """Imports the packages `export_format` needs, or raises an ImportError
    naming the missing ones and the `export` extra that installs them."""
    missing = []
    for module, package in REQUIREMENTS[export_format]:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ImportError(
            f"The {export_format} export needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install the "
            "export extra: pip install 'bn_zoo[export]'."
        )


class ImagesCheck(keras.layers.Layer):
    """The input check of `serving_default`, in ops ONNX and LiteRT can run.

    Refuses a batch that is not `[batch, height, width, channels]` (with
    `resize`: any height and width > 0), an empty one, and NaN, ±inf or
    values outside [0, 255]: exactly what `serving_default` refuses. Neither
    format has an assertion op, so the check is a gather of index
    `not ok` from a one-element tensor, named `CHECK_NAME`: index 1 is out
    of bounds, which both runtimes refuse (ONNX Runtime: `... Gather node.
    Name:'.../CHECK_NAME' Status Message: indices element out of data
    bounds, idx=1 ...`; LiteRT: `gather index out of bounds ... (GATHER)
    failed to invoke.`). Its zero result is added to the shape the images
    are reshaped to, so every later op runs after it, and a converter
    cannot drop it: the check reads the run-time shape (the declared one is
    `[batch, height, width, channels]`, which a converter would fold), and
    the values.

    Args:
        image_shape: `(height, width, channels)` served.
        resize: Whether any height and width are taken (resized later).
        value_check: `"compare"` (x >= 0 and x <= 255, which NaN fails) or
            `"bits"`: the same test on the float32 bit patterns read as
            int32 (`_pixel_bits_ok`). LiteRT's int8 converter quantizes
            float comparisons to int8, where NaN and out-of-range values
            are clipped into range and pass; it leaves integer ops on the
            float input alone. tf2onnx cannot convert the bitcast, so ONNX
            compares floats.

    Input: float32 `[batch, height, width, channels]`. Output: the same
    values, with the static shape `[batch, height, width, channels]` (height
    and width None with `resize`).
    """

    def __init__(self, image_shape, resize, value_check="compare", **kwargs):
        super().__init__(**kwargs)
        if value_check not in ("compare", "bits"):
            raise ValueError(
                f"`value_check` must be 'compare' or 'bits'. Received: value_check={value_check!r}")
        self.image_shape = tuple(int(d) for d in image_shape)
        self.resize = bool(resize)
        self.value_check = value_check

    def call(self, images):
        import tensorflow as tf

        height, width, channels = self.image_shape
        shape = tf.shape(images)
        # Padding makes the slices valid for inputs of any rank: a rank below
        # 4 leaves 0 channels, one above it a non-zero padded[4].
        padded = tf.concat([shape, tf.zeros([5], tf.int32)], 0)
        ok = tf.logical_and(tf.size(images) > 0, tf.equal(padded[3], channels))
        ok = tf.logical_and(ok, tf.equal(padded[4], 0))
        if not self.resize:
            ok = tf.logical_and(ok, tf.reduce_all(tf.equal(padded[1:3], [height, width])))
        if self.value_check == "bits":
            ok = tf.logical_and(ok, _pixel_bits_ok(tf.reshape(tf.bitcast(images, tf.int32), [-1])))
        else:
            values = tf.reshape(images, [-1])
            ok = tf.logical_and(
                ok, tf.reduce_all(tf.logical_and(values >= 0.0, values <= PIXEL_MAX)))
        zero = tf.gather(tf.zeros([1], tf.int32), tf.cast(tf.logical_not(ok), tf.int32),
                         name=CHECK_NAME)
        # A target of constants where the shape is known, so that the
        # converters still see [?, height, width, channels] (LiteRT has no
        # EnsureShape op, and a depthwise convolution needs its channels).
        spatial = [padded[1], padded[2]] if self.resize else [height, width]
        return tf.reshape(images, tf.stack([padded[0] + zero, *spatial, channels]))

    def compute_output_shape(self, input_shape):
        spatial = (None, None) if self.resize else self.image_shape[:2]
        return (input_shape[0], *spatial, self.image_shape[2])

    def get_config(self):
        return {**super().get_config(), "image_shape": self.image_shape,
                "resize": self.resize, "value_check": self.value_check}


def _pixel_bits_ok(bits):
    """Whether the float32 values whose bit patterns (as int32) are `bits`
    (1-D) are all in [0, 255]: non-negative floats order as their bit
    patterns, NaN and inf lie above 255's, negative values below 0, -0.0 at
    the int32 minimum. Two reductions decide the common case; only a batch
    holding a negative pattern (-0.0, or a refused value) runs the exact
    element-wise test, which costs LiteRT more than the network for the
    MLP."""
    import tensorflow as tf

    plain = tf.logical_and(tf.reduce_max(bits) <= _PIXEL_MAX_BITS, tf.reduce_min(bits) >= 0)

    def exact():
        return tf.reduce_all(tf.logical_or(
            tf.logical_and(bits >= 0, bits <= _PIXEL_MAX_BITS),
            tf.equal(bits, _NEGATIVE_ZERO_BITS)))

    return tf.cond(plain, lambda: tf.constant(True), exact)


def serving_model(model, preprocessing, image_shape, top_k, resize, export_format=ONNX,
                  interpolation="bilinear"):
    """The Keras model that the ONNX and LiteRT files hold.

    Args:
        model: The (folded or not) classifier, as for `ServingModule`.
        preprocessing: Its `preprocess_input` mode; ignored for a model
            with its own `PreprocessInput` layer (at any depth), which is fed
            raw pixels.
        image_shape: `(height, width, channels)` of the images served.
        top_k: Number of top classes returned (capped at the classes).
        resize: Take images of any height and width and resize them to
            `image_shape` (the Inception family, as the SavedModel's
            `serving_default`); False: exactly `image_shape`.
        export_format: `"onnx"` or `"litert"`, the file it is for: each
            gets the `ImagesCheck` value test its converter keeps.
        interpolation: With `resize`: the `keras.layers.Resizing` method
            (the data config's; bilinear by default), clipped to [0, 255].

    Returns:
        A functional `keras.Model` with one input named `images` and the
        outputs `{probabilities, classes, scores}`, called once (Keras'
        exporters need a called model).
    """
    from bn_zoo.export.signatures import _outputs_probabilities, find_preprocessing_layer

    height, width, channels = image_shape
    spatial = (None, None) if resize else (height, width)
    images = keras.Input((*spatial, channels), name="images")
    x = ImagesCheck(image_shape, resize, "bits" if export_format == LITERT else "compare",
                    name="images_check")(images)
    if resize:
        x = keras.layers.Resizing(height, width, interpolation=interpolation, name="resize")(x)
        if interpolation not in ("bilinear", "nearest", "area"):  # They cannot overshoot.
            x = keras.ops.clip(x, 0.0, PIXEL_MAX)
    if find_preprocessing_layer(model) is None:
        x = PreprocessInput(preprocessing, name="preprocess_input")(x)
    input_shape = tuple(model.inputs[0].shape[1:])
    if input_shape != tuple(image_shape):
        x = keras.layers.Reshape(input_shape, name="to_model_input")(x)
    # Inference mode recorded in the graph: dropout off, BN with its
    # inference statistics, whatever mode an exporter traces in.
    outputs = model(x, training=False)
    if not _outputs_probabilities(model):
        outputs = keras.layers.Softmax(name="softmax")(outputs)
    k = min(top_k, int(model.outputs[0].shape[-1]))
    scores, classes = keras.ops.top_k(outputs, k)
    served = keras.Model(
        images,
        {
            "probabilities": outputs,
            "classes": keras.ops.cast(classes, "int64"),
            "scores": scores,
        },
        name=f"{model.name}_serving",
    )
    served(keras.ops.zeros((1, height, width, channels)))
    return served


def input_signature(served):
    """The `[tf.TensorSpec]` named `images` of a `serving_model`."""
    import tensorflow as tf

    return [tf.TensorSpec([None, *served.inputs[0].shape[1:]], tf.float32, name="images")]
