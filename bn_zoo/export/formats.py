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

Neither format has a string input or an assertion op, so they have no
`image_bytes` and no run-time checks of their own (see docs/export.md).
"""

import importlib

import keras

from bn_zoo.models.preprocessing import PreprocessInput, preprocessing_layer

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


def serving_model(model, preprocessing, image_shape, top_k, resize):
    """The Keras model that the ONNX and LiteRT files hold.

    Args:
        model: The (folded or not) classifier, as for `ServingModule`.
        preprocessing: Its `preprocess_input` mode; ignored (None) for a model
            with its own `PreprocessInput` layer.
        image_shape: `(height, width, channels)` of the images served.
        top_k: Number of top classes returned (capped at the classes).
        resize: Take images of any height and width and resize them
            bilinearly to `image_shape` (the Inception family, as the
            SavedModel's `serving_default`); False: exactly `image_shape`.

    Returns:
        A functional `keras.Model` with one input named `images` and the
        outputs `{probabilities, classes, scores}`, called once (Keras'
        exporters need a called model).
    """
    from bn_zoo.export.signatures import _outputs_probabilities

    height, width, channels = image_shape
    spatial = (None, None) if resize else (height, width)
    images = keras.Input((*spatial, channels), name="images")
    x = images
    if resize:
        x = keras.layers.Resizing(height, width, interpolation="bilinear", name="resize")(x)
    if preprocessing_layer(model) is None:
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
