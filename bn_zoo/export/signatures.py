"""Serving signatures: named inputs, preprocessing in the graph, top-k outputs.

The SavedModel gets up to three signatures, which preprocess their input
and call one function: the Keras model traced once in inference mode
(Algorithm 2's inference network) followed by softmax (for models that end
in logits) and top-k.

- `serving_default`: `images`, float32 pixel values in [0, 255], shape
  [batch, height, width, channels].
- `serving_uint8`: `images`, uint8, same shape and meaning.
- `image_bytes` (Inception models): `image_bytes`, a [batch] string tensor of
  encoded JPEG or PNG images, decoded, central-cropped and resized in the
  graph exactly as the evaluation pipeline does
  (`bn_zoo.data.preprocessing.preprocess_for_eval`).

Every signature returns `probabilities` [batch, classes] float32, and the
top-k `classes` [batch, k] int64 with their `scores` [batch, k] float32.

The inputs are declared with unknown rank on purpose: the rank, channel and
size checks are then run-time assertions with explicit messages that no
client (Python, `saved_model_cli`, TensorFlow Serving) can skip or have
constant-folded away on the strength of a declared shape. `serving_default`
also asserts that every value is a finite pixel value in [0, 255].
"""

import keras
import tensorflow as tf
# TensorFlow's own freezing (used by its TFLite converter); it has no public
# TF2 name.
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from bn_zoo.data.preprocessing import preprocess_for_eval
from bn_zoo.models.preprocessing import (
    PREPROCESSING_MODES,
    preprocess_input,
    preprocessing_layer,
)

DEFAULT_SIGNATURE = "serving_default"
UINT8_SIGNATURE = "serving_uint8"
IMAGE_BYTES_SIGNATURE = "image_bytes"
# The central crop of Inception-style evaluation (Szegedy et al., 2015).
CENTRAL_FRACTION = 0.875
# Weights stored as graph constants must fit, with the graph, in one
# protobuf message (2 GiB at most).
MAX_CONSTANT_BYTES = 1 << 30
# Served pixel values are in [0, PIXEL_MAX].
PIXEL_MAX = 255.0
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


class ServingModule(tf.Module):
    """A `tf.Module` holding the serving signatures of a Keras classifier.

    Each signature is traced once, to a concrete function; the module tracks
    only the variables those functions read, so the SavedModel holds the
    inference network and nothing else (no Python, no Keras objects).

        module = ServingModule(model, "inception")
        module.save("/tmp/serving/bn_inception/1")

    Args:
        model: A built `keras.Model` with one image input and one output of
            class probabilities (softmax) or logits (linear last layer).
        preprocessing: `"mnist"` (x/255), `"inception"` (x/127.5 − 1) or
            `"caffe_bn_inception"` (BGR minus means), as
            `bn_zoo.model_info(name).preprocessing` or the registered
            weights' own mode.
        image_shape: `(height, width, channels)` of the images the signatures
            take. Defaults to the model's input shape when it is 3-D; needed
            for a model with flat inputs (e.g. `(28, 28, 1)` for a 784-input
            MLP).
        top_k: How many classes to return (capped at the number of classes).
        with_image_bytes: Whether to add the `image_bytes` signature. Defaults
            to True for Inception preprocessing with square RGB inputs.
        central_fraction: Fraction of each side of a decoded image kept by the
            central crop of `image_bytes`, in (0, 1].
        constant_weights: Store the weights as constants of the graph instead
            of variables: the inference network with frozen parameters
            (Algorithm 2). TensorFlow then optimizes the served graph with
            the weights known (oneDNN reorders each filter once instead of on
            every call), so it serves faster; the SavedModel has no variables
            to restore or fine-tune. Limited to models whose weights fit in
            a GraphDef (protobuf's 2 GiB; `MAX_CONSTANT_BYTES` here).
    """

    def __init__(
        self,
        model,
        preprocessing=None,
        image_shape=None,
        top_k=5,
        with_image_bytes=None,
        central_fraction=CENTRAL_FRACTION,
        constant_weights=False,
    ):
        super().__init__(name="serving")
        if not 0.0 < central_fraction <= 1.0:
            raise ValueError(
                f"`central_fraction` must be in (0, 1]; received {central_fraction}."
            )
        settings = serving_settings(model, preprocessing, image_shape, top_k, with_image_bytes)
        preprocessing, image_shape, resize, in_model, with_image_bytes = settings
        input_shape = tuple(model.inputs[0].shape[1:])
        head = _make_head(model, top_k)

        # The network is traced once; every signature calls this function.
        network = tf.function(
            lambda inputs: model(inputs, training=False),
            input_signature=[tf.TensorSpec([None, *input_shape], tf.float32)],
            autograph=False,
        ).get_concrete_function()
        if constant_weights:
            _check_constant_size(model, network.variables)
            network = convert_variables_to_constants_v2(network)

        def classify(inputs):
            """Preprocessed inputs -> the output dict."""
            outputs = network(tf.reshape(inputs, [-1, *input_shape]))
            return head(tf.nest.flatten(outputs)[0])

        def classify_pixels(images, check_values):
            """float32 pixels in [0, 255] -> the output dict."""
            images = _check_images(images, image_shape, resize, check_values)
            if resize:
                images = _resize(images, image_shape[:2])
            if in_model is not None:
                return classify(images)
            return classify(preprocess_input(images, preprocessing))

        def serve_float(images):
            return classify_pixels(images, check_values=True)

        def serve_uint8(images):  # Every uint8 value is a valid pixel.
            return classify_pixels(tf.cast(images, tf.float32), check_values=False)

        def serve_bytes(image_bytes):
            return classify(_decode_images(image_bytes, image_shape[0], central_fraction))

        endpoints = {
            DEFAULT_SIGNATURE: (serve_float, tf.TensorSpec(None, tf.float32, name="images")),
            UINT8_SIGNATURE: (serve_uint8, tf.TensorSpec(None, tf.uint8, name="images")),
        }
        if with_image_bytes:
            endpoints[IMAGE_BYTES_SIGNATURE] = (
                serve_bytes,
                tf.TensorSpec(None, tf.string, name="image_bytes"),
            )
        self._signatures = {
            name: tf.function(fn, input_signature=[spec], autograph=False)
            .get_concrete_function()
            for name, (fn, spec) in endpoints.items()
        }
        variables = {}
        for function in self._signatures.values():
            for variable in function.variables:
                variables.setdefault(id(variable), variable)
        # Tracked, so that the SavedModel stores them.
        self.model_variables = list(variables.values())
        self.image_shape = image_shape
        self.preprocessing = preprocessing

    @property
    def signatures(self):
        """{name: concrete function}, for `tf.saved_model.save(signatures=)`."""
        return dict(self._signatures)

    def save(self, path):
        """Writes the SavedModel to `path` (use `bn_zoo.export.export_model`
        for versioned, atomic export)."""
        tf.saved_model.save(self, path, signatures=self.signatures)


def serving_settings(model, preprocessing, image_shape, top_k, with_image_bytes=None):
    """Validates the arguments of `ServingModule` (shared with the ONNX and
    LiteRT exports).

    Returns:
        `(preprocessing, image_shape, resize, preprocessing_layer,
        with_image_bytes)`: the preprocessing mode (the model's own if it has
        a `PreprocessInput` layer, which is returned too, else None), the
        served `(height, width, channels)`, whether images of any size are
        resized (the image networks; the MLP's 28×28 is fixed), and whether
        to add `image_bytes`.

    Raises:
        ValueError: see `ServingModule`.
    """
    # A model built with include_preprocessing=True scales its own input:
    # its mode rules, and the signatures feed it raw pixels.
    in_model = preprocessing_layer(model)
    if in_model is not None:
        if preprocessing not in (None, in_model.mode):
            raise ValueError(
                f"Model '{model.name}' scales its input itself ({in_model.mode!r}, "
                f"include_preprocessing=True); received preprocessing={preprocessing!r}. "
                "Pass preprocessing=None."
            )
        preprocessing = in_model.mode
    if preprocessing not in PREPROCESSING_MODES:
        raise ValueError(
            f"`preprocessing` must be one of {PREPROCESSING_MODES}; received "
            f"{preprocessing!r}. Use bn_zoo.model_info(name).preprocessing."
        )
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be a positive integer; received {top_k!r}.")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"Model '{model.name}' has {len(model.inputs)} inputs and "
            f"{len(model.outputs)} outputs; serving needs one image input and "
            "one class output."
        )
    input_shape = tuple(model.inputs[0].shape[1:])
    output_shape = tuple(model.outputs[0].shape[1:])
    if len(output_shape) != 1 or output_shape[0] is None:
        raise ValueError(
            f"Model '{model.name}' outputs shape {output_shape}; serving needs "
            "(classes,). Export a model with include_top=True."
        )
    image_shape = _resolve_image_shape(model, input_shape, image_shape)
    _outputs_probabilities(model)  # Refuses a last activation other than softmax/linear.
    square_rgb = image_shape[0] == image_shape[1] and image_shape[2] == 3
    bytes_ok = preprocessing == "inception" and square_rgb and in_model is None
    if with_image_bytes is None:
        with_image_bytes = bytes_ok
    if with_image_bytes and not bytes_ok:
        raise ValueError(
            "The `image_bytes` signature serves Inception-preprocessed models "
            f"with square RGB inputs and no preprocessing layer; this model "
            f"takes {image_shape} with {preprocessing!r} preprocessing"
            f"{' inside' if in_model is not None else ''}. Pass with_image_bytes=False."
        )
    resize = preprocessing != "mnist"
    return preprocessing, image_shape, resize, in_model, bool(with_image_bytes)


def _check_constant_size(model, variables):
    size = sum(v.shape.num_elements() * v.dtype.size for v in variables)
    if size > MAX_CONSTANT_BYTES:
        raise ValueError(
            f"Model '{model.name}' has {size / 2**30:.2f} GiB of weights, more "
            f"than the {MAX_CONSTANT_BYTES / 2**30:.2f} GiB a graph can hold as "
            "constants. Export it with constant_weights=False "
            "(--noconstant_weights) to keep the weights as variables."
        )


def _resolve_image_shape(model, input_shape, image_shape):
    if image_shape is None:
        if len(input_shape) != 3 or None in input_shape:
            raise ValueError(
                f"Model '{model.name}' takes inputs of shape {input_shape}, not "
                "images (height, width, channels): pass `image_shape`, e.g. "
                "(28, 28, 1) for a flattened MNIST model."
            )
        return tuple(int(d) for d in input_shape)
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(
            "`image_shape` must be (height, width, channels) with positive "
            f"sizes; received {image_shape}."
        )
    size = image_shape[0] * image_shape[1] * image_shape[2]
    model_size = 1
    for d in input_shape:
        model_size *= d or 0
    if len(input_shape) == 3 and input_shape[-1] != image_shape[-1]:
        raise ValueError(
            f"`image_shape` {image_shape} has {image_shape[-1]} channels but "
            f"model '{model.name}' takes {input_shape}."
        )
    if len(input_shape) != 3 and size != model_size:
        raise ValueError(
            f"`image_shape` {image_shape} holds {size} values but model "
            f"'{model.name}' takes inputs of shape {input_shape}."
        )
    return image_shape


def _make_head(model, top_k):
    """model outputs -> {probabilities, classes, scores}."""
    apply_softmax = not _outputs_probabilities(model)
    k = min(top_k, int(model.outputs[0].shape[-1]))

    def head(outputs):
        outputs = tf.cast(outputs, tf.float32)
        probabilities = tf.nn.softmax(outputs) if apply_softmax else outputs
        scores, classes = tf.math.top_k(probabilities, k=k)
        return {
            "probabilities": probabilities,
            "classes": tf.cast(classes, tf.int64),
            "scores": scores,
        }

    return head


def _outputs_probabilities(model):
    """True if the model ends in a softmax, False if in logits."""
    layer = model.outputs[0]._keras_history.operation
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    if activation is keras.activations.softmax:
        return True
    if activation is None or activation is keras.activations.linear:
        return False
    raise ValueError(
        f"The last layer of model '{model.name}' ('{layer.name}') has "
        f"activation {getattr(activation, '__name__', activation)!r}; serving "
        "returns class probabilities and needs softmax or linear (logits). "
        "Build the model with classifier_activation='softmax' or None."
    )


def _resize(images, size):
    """Bilinear resize to `size`, skipped for images of that size already."""
    same = tf.reduce_all(tf.equal(tf.shape(images)[1:3], size))
    resized = tf.cond(same, lambda: images, lambda: tf.image.resize(images, size))
    return tf.ensure_shape(resized, [None, *size, images.shape[-1]])


def _check_images(images, image_shape, resize, check_values=True):
    """Run-time checks of a float32 image batch; returns it with its static
    shape set. One assertion, whose message gives the expected and the
    received shape, covers rank, size and channels; with `check_values` a
    second one, run after it, refuses NaN, ±inf and values outside
    [0, 255] (a network fed those returns confident nonsense)."""
    height, width, channels = image_shape
    shape = tf.shape(images)
    # Padding makes the slices valid for inputs of any rank, so no op can
    # fail with a less clear message before the assertion below.
    padded = tf.concat([shape, tf.zeros([4], tf.int32)], 0)
    ok = tf.reduce_all(
        [tf.equal(tf.size(shape), 4), padded[0] > 0, tf.equal(padded[3], channels)]
    )
    if resize:
        ok = tf.logical_and(ok, tf.reduce_all(padded[1:3] > 0))
        expected = f"[batch, height, width, {channels}] (any size; resized to {height}x{width})"
    else:
        ok = tf.logical_and(ok, tf.reduce_all(tf.equal(padded[1:3], [height, width])))
        expected = f"[batch, {height}, {width}, {channels}]"
    check = tf.debugging.Assert(
        ok,
        [
            f"`images` must have shape {expected}: a non-empty batch of "
            "channels_last images (add the batch dimension for a single "
            "image). Received shape:",
            shape,
        ],
        summarize=8,
    )
    if check_values:
        with tf.control_dependencies([check]):
            check = _check_pixel_values(images)
    with tf.control_dependencies([check]):
        images = tf.identity(images)
    size = [None, None] if resize else [height, width]
    return tf.ensure_shape(images, [None, *size, channels])


def _check_pixel_values(images):
    """The check that every value of `images` is a finite pixel value in
    [0, PIXEL_MAX] (NaN fails both comparisons). Only when it fails are the
    range and the count of non-finite values computed, for the message."""
    values = tf.reshape(images, [-1])
    ok = tf.reduce_all(tf.logical_and(values >= 0.0, values <= PIXEL_MAX))

    def refuse():
        finite = tf.math.is_finite(values)
        finite_values = tf.boolean_mask(values, finite)  # [inf, -inf] if none.
        check = tf.debugging.Assert(
            False,
            [
                f"`images` must hold finite pixel values in [0, {PIXEL_MAX:g}] "
                "(raw pixels, not scaled ones: the signature scales them "
                "itself; NaN and inf are refused). Received values in "
                "[min, max] (of the finite ones), non-finite count:",
                tf.stack([tf.reduce_min(finite_values), tf.reduce_max(finite_values)]),
                tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.int64)),
            ],
            summarize=8,
        )
        with tf.control_dependencies([check]):
            return tf.constant(False)

    return tf.cond(ok, lambda: tf.constant(True), refuse)


def _decode_images(image_bytes, image_size, central_fraction):
    """A [batch] string tensor of JPEG/PNG images -> float32
    [batch, image_size, image_size, 3] in [-1, 1], preprocessed exactly as
    the Inception evaluation pipeline (`bn_zoo.data.preprocessing`)."""

    def decode(data):
        is_png = tf.equal(tf.strings.substr(data, 0, len(_PNG_MAGIC)), _PNG_MAGIC)
        is_jpeg = tf.equal(tf.strings.substr(data, 0, len(_JPEG_MAGIC)), _JPEG_MAGIC)
        check = tf.debugging.Assert(
            tf.logical_or(is_png, is_jpeg),
            [
                "An element of `image_bytes` is not an encoded JPEG or PNG "
                "image (convert other formats such as GIF or BMP to PNG or "
                "JPEG, and send the file's bytes, not decoded pixels or base64 "
                "text). Its first bytes:",
                _printable(tf.strings.substr(data, 0, 16)),
            ],
        )
        with tf.control_dependencies([check]):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return preprocess_for_eval(image, image_size, central_fraction)

    shape = tf.shape(image_bytes)
    check = tf.debugging.Assert(
        tf.logical_and(tf.equal(tf.size(shape), 1), tf.size(image_bytes) > 0),
        [
            "`image_bytes` must be a 1-D string tensor [batch] that holds at "
            "least one encoded image, one element per image (put a single "
            "image in a list; flatten nested lists). Received shape:",
            shape,
        ],
        summarize=8,
    )
    with tf.control_dependencies([check]):
        image_bytes = tf.ensure_shape(tf.identity(image_bytes), [None])
    return tf.map_fn(
        decode,
        image_bytes,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
    )


def _printable(data):
    """Bytes as valid UTF-8 with control characters replaced: the error
    message must be readable (bytes such as a GIF's would make the client's
    decoding of the message fail with a UnicodeDecodeError)."""
    return tf.strings.unicode_transcode(
        data, "UTF-8", "UTF-8", errors="replace", replace_control_characters=True
    )
