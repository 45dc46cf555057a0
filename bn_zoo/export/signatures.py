"""Serving signatures: named inputs, preprocessing in the graph, top-k outputs.

The SavedModel gets up to three signatures, which preprocess their input
and call one function: the Keras model traced once in inference mode
(Algorithm 2's inference network) followed by softmax (for models that end
in logits) and top-k.

- `serving_default`: `images`, float32 pixel values in [0, 255], shape
  [batch, height, width, channels].
- `serving_uint8`: `images`, uint8, same shape and meaning.
- `image_bytes` (models with square RGB inputs): `image_bytes`, a [batch]
  string tensor of encoded JPEG or PNG images, decoded, cropped and resized
  in the graph as the weights' data config says (`DataConfig`: crop
  fraction and mode, interpolation; by default the Inception evaluation
  crop of `bn_zoo.data.preprocessing.preprocess_for_eval`, the central
  87.5%, bilinear), then scaled as the model expects.

Every signature returns `probabilities` [batch, classes] float32, the top-k
`classes` [batch, k] int64 with their `scores` [batch, k] float32, and
their `class_names` [batch, k] string, looked up in the SavedModel's asset
`labels.txt` (`bn_zoo.export.class_names`).

The inputs are declared with unknown rank on purpose: the rank, channel and
size checks are then run-time assertions with explicit messages that no
client (Python, `saved_model_cli`, TensorFlow Serving) can skip or have
constant-folded away on the strength of a declared shape. `serving_default`
also asserts that every value is a finite pixel value in [0, 255].
"""

import collections
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from bn_zoo.data import images as image_files
from bn_zoo.export import class_names as class_names_lib
from bn_zoo.models.data_config import CROP_MODES, INTERPOLATIONS
from bn_zoo.models.input_scaling import (
    PREPROCESSING_MODES,
    preprocessing_layers,
    scale,
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

# What `serving_settings` decides (a tuple, unpacked by older callers).
ServingSettings = collections.namedtuple(
    "ServingSettings",
    ["preprocessing", "image_shape", "resize", "preprocessing_layer", "with_image_bytes"])
# How `image_bytes` cuts a decoded image to the input (`DataConfig`'s fields).
ImageCrop = collections.namedtuple("ImageCrop", ["fraction", "mode", "interpolation"])


class ServingModule(tf.Module):
    """A `tf.Module` holding the serving signatures of a Keras classifier.

    Each signature is traced once, to a concrete function; the module tracks
    only the variables those functions read and the class-name table, so
    the SavedModel holds the inference network, `assets/labels.txt` and
    nothing else (no Python, no Keras objects).

        module = ServingModule(model, "inception", class_names=["cat", "dog"])
        module.save("/tmp/serving/bn_inception/1")

    Args:
        model: A built `keras.Model` with one image input and one output of
            class probabilities (softmax) or logits (linear last layer).
            With a `PreprocessInput` layer at any depth (a model, or a
            backbone inside it, built with `include_preprocessing=True`) it
            takes raw pixels and scales them itself.
        preprocessing: A `bn_zoo.models.preprocess_input` mode
            (`PREPROCESSING_MODES`), as `bn_zoo.model_info(name)
            .preprocessing` or the registered weights' own mode; None for a
            model that scales its own input (any other value is then refused:
            the pixels would be scaled twice).
        image_shape: `(height, width, channels)` of the images the signatures
            take. Defaults to the model's input shape when it is 3-D; needed
            for a model with flat inputs (e.g. `(28, 28, 1)` for a 784-input
            MLP).
        top_k: How many classes to return (capped at the number of classes).
        with_image_bytes: Whether to add the `image_bytes` signature. None:
            for square RGB inputs. True also serves square one-channel
            inputs (images decoded to grayscale).
        central_fraction: Fraction of each side of a decoded image that
            `image_bytes` keeps, in (0, 1]; None: the data config's
            `crop_fraction` (default `CENTRAL_FRACTION`).
        constant_weights: Store the weights as constants of the graph instead
            of variables: the inference network with frozen parameters
            (Algorithm 2). TensorFlow then optimizes the served graph with
            the weights known (oneDNN reorders each filter once instead of on
            every call), so it serves faster; the SavedModel has no variables
            to restore or fine-tune. Limited to models whose weights fit in
            a GraphDef (protobuf's 2 GiB; `MAX_CONSTANT_BYTES` here).
        class_names: One string per output column, in output order, returned
            as `class_names` beside `classes`; None: the indices "0".."N-1".
        data_config: The weights' `bn_zoo.models.catalogue.DataConfig` (or
            None): its `crop_fraction`, `crop_mode` and `interpolation` say
            how `image_bytes` cuts and resizes a decoded image, and its
            `interpolation` how `images` of another size are resized.

    Raises:
        ValueError, TypeError: see `serving_settings` and
            `bn_zoo.export.class_names.check_class_names`.
    """

    def __init__(
        self,
        model,
        preprocessing=None,
        image_shape=None,
        top_k=5,
        with_image_bytes=None,
        central_fraction=None,
        constant_weights=False,
        class_names=None,
        data_config=None,
    ):
        super().__init__(name="serving")
        crop = image_crop(data_config, central_fraction)
        settings = serving_settings(model, preprocessing, image_shape, top_k, with_image_bytes)
        preprocessing, image_shape, resize, in_model, with_image_bytes = settings
        num_classes = int(model.outputs[0].shape[-1])
        names = (class_names_lib.index_names(num_classes) if class_names is None
                 else class_names_lib.check_class_names(class_names, num_classes, model.name))
        input_shape = tuple(model.inputs[0].shape[1:])
        self._labels_table(names)
        head = _make_head(model, top_k, self.class_name_table)

        # The network is traced once; every signature calls this function.
        if constant_weights:
            network = _frozen_network(model, input_shape)
        else:
            network = tf.function(
                lambda inputs: model(inputs, training=False),
                input_signature=[tf.TensorSpec([None, *input_shape], tf.float32)],
                autograph=False,
            ).get_concrete_function()

        def classify(inputs):
            """Preprocessed inputs -> the output dict."""
            outputs = network(tf.reshape(inputs, [-1, *input_shape]))
            return head(tf.nest.flatten(outputs)[0])

        def classify_raw(images):
            """float32 pixels of the served size, in [0, 255] -> the output dict."""
            if in_model is not None:
                return classify(images)
            return classify(scale(images, preprocessing))

        def classify_pixels(images, check_values):
            """float32 pixels in [0, 255] -> the output dict."""
            images = _check_images(images, image_shape, resize, check_values)
            if resize:
                images = _resize(images, image_shape[:2], crop.interpolation)
            return classify_raw(images)

        def serve_float(images):
            return classify_pixels(images, check_values=True)

        def serve_uint8(images):  # Every uint8 value is a valid pixel.
            return classify_pixels(tf.cast(images, tf.float32), check_values=False)

        def serve_bytes(image_bytes):
            return classify_raw(_decode_images(image_bytes, image_shape, crop))

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
        self.class_names = names

    def _labels_table(self, names):
        """The table class index -> name, initialized from the asset
        labels.txt (written to a temporary directory that lives as long as
        this module: `save` copies it into the SavedModel's assets/)."""
        self._labels_directory = tempfile.TemporaryDirectory(prefix="bn_zoo_labels_")
        path = os.path.join(self._labels_directory.name, class_names_lib.LABELS_FILE)
        class_names_lib.write_labels_file(path, names)
        self.labels_file = tf.saved_model.Asset(path)
        self.class_name_table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                self.labels_file, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
                tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, vocab_size=len(names)),
            default_value="")

    @property
    def signatures(self):
        """{name: concrete function}, for `tf.saved_model.save(signatures=)`."""
        return dict(self._signatures)

    def save(self, path):
        """Writes the SavedModel to `path` (use `bn_zoo.export.export_model`
        for versioned, atomic export)."""
        # TensorFlow warns that it cannot list the class-name table's
        # initializer in the TF1 collections, which a TF2 SavedModel does
        # not use (the table is restored from the object graph); only that
        # warning is dropped.
        logger = tf.get_logger()
        logger.addFilter(_drop_table_collection_warning)
        try:
            tf.saved_model.save(self, path, signatures=self.signatures)
        finally:
            logger.removeFilter(_drop_table_collection_warning)


def _drop_table_collection_warning(record):
    return not record.getMessage().startswith(
        "Issue encountered when serializing table_initializer")


def serving_settings(model, preprocessing, image_shape, top_k, with_image_bytes=None):
    """Validates the arguments of `ServingModule` (shared with the ONNX and
    LiteRT exports).

    Returns:
        A `ServingSettings` `(preprocessing, image_shape, resize,
        preprocessing_layer, with_image_bytes)`: the preprocessing mode (the
        model's own if it has a `PreprocessInput` layer at any depth, which
        is returned too, else None), the served `(height, width,
        channels)`, whether images of any size are resized (the image
        networks; the MLP's 28×28 is fixed), and whether to add
        `image_bytes`.

    Raises:
        ValueError: an unknown preprocessing mode, or none for a model that
            does not scale its input; any mode for one that does (it would
            scale the pixels twice); a bad `top_k`; a model that is not one
            image input to one class output; `image_bytes` for inputs that
            are not square with 1 or 3 channels.
    """
    # A model built with include_preprocessing=True (or holding a backbone
    # that was) scales its own input: its mode rules, and the signatures
    # feed it raw pixels.
    in_model = find_preprocessing_layer(model)
    if in_model is not None:
        if preprocessing is not None:
            raise ValueError(
                f"Model '{model.name}' scales its input itself (PreprocessInput layer "
                f"'{in_model.name}', mode {in_model.mode!r}: built with "
                f"include_preprocessing=True), so preprocessing={preprocessing!r} would "
                "scale the pixels twice. Pass preprocessing=None (no --preprocessing); "
                "the export feeds the model raw 0-255 pixels."
            )
        preprocessing = in_model.mode
    if preprocessing not in PREPROCESSING_MODES:
        if preprocessing is None:
            raise ValueError(
                f"Model '{model.name}' does not scale its input (it has no PreprocessInput "
                "layer) and no preprocessing mode was given; pass preprocessing= "
                f"(--preprocessing) one of {PREPROCESSING_MODES}: the scaling it was "
                "trained with, bn_zoo.model_info(name).preprocessing for a zoo model.")
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
    square = image_shape[0] == image_shape[1]
    bytes_ok = square and image_shape[2] in (1, 3)
    if with_image_bytes is None:
        with_image_bytes = square and image_shape[2] == 3
    if with_image_bytes and not bytes_ok:
        raise ValueError(
            "The `image_bytes` signature serves models with square inputs of 1 "
            f"(grayscale) or 3 (RGB) channels; this model takes {image_shape}. Pass "
            "with_image_bytes=False."
        )
    resize = preprocessing != "mnist"
    return ServingSettings(preprocessing, image_shape, resize, in_model, bool(with_image_bytes))


def find_preprocessing_layer(model):
    """The `PreprocessInput` layer that scales `model`'s input, at any depth
    (the model's own, or that of a backbone nested in it), or None. The
    first one Keras tracks, if there are several."""
    layers = preprocessing_layers(model)
    return layers[0] if layers else None


def image_crop(data_config=None, central_fraction=None):
    """How `image_bytes` cuts a decoded image: an `ImageCrop` from a
    `DataConfig` (its `crop_fraction`, `crop_mode`, `interpolation`; None:
    the Inception evaluation crop), `central_fraction` overriding its
    fraction.

    Raises:
        ValueError: a fraction outside (0, 1], an unknown crop mode or
            interpolation.
    """
    fraction = getattr(data_config, "crop_fraction", CENTRAL_FRACTION)
    if central_fraction is not None:
        fraction = central_fraction
    mode = getattr(data_config, "crop_mode", "central_fraction")
    interpolation = getattr(data_config, "interpolation", "bilinear")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
            0.0 < fraction <= 1.0):
        raise ValueError(f"`central_fraction` must be in (0, 1]; received {fraction!r}.")
    if mode not in CROP_MODES:
        raise ValueError(f"The data config's crop_mode must be one of {CROP_MODES}. "
                         f"Received: crop_mode={mode!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"The data config's interpolation must be one of {INTERPOLATIONS}. "
                         f"Received: interpolation={interpolation!r}")
    return ImageCrop(float(fraction), mode, interpolation)


def _frozen_network(model, input_shape):
    """`model` in inference mode, traced with every weight a constant of the
    graph (a `Const` op holding its current value) instead of a variable.

    Keras' public `StatelessScope` maps each of the model's variables to a
    value for the duration of a call; values made with `tf.constant` inside
    the trace become graph constants. (TensorFlow's own freezing,
    `convert_variables_to_constants_v2`, has no public TF2 name.)

    Raises:
        ValueError: the weights are too large for graph constants, or the
            traced network still reads a variable that is not the model's.
    """
    values = [keras.ops.convert_to_numpy(v) for v in model.variables]
    _check_constant_size(model, values)

    def network(inputs):
        mapping = [(v, tf.constant(value)) for v, value in zip(model.variables, values)]
        with keras.StatelessScope(state_mapping=mapping):
            return model(inputs, training=False)

    frozen = tf.function(
        network, input_signature=[tf.TensorSpec([None, *input_shape], tf.float32)],
        autograph=False,
    ).get_concrete_function()
    if frozen.variables:
        names = ", ".join(sorted({v.name for v in frozen.variables})[:5])
        raise ValueError(
            f"Model '{model.name}' reads variables that are not among its weights "
            f"({names}), so they cannot be stored as constants. Export it with "
            "constant_weights=False (--noconstant_weights), or make them Keras "
            "weights (`layer.add_weight`).")
    return frozen


def _check_constant_size(model, values):
    size = sum(np.asarray(value).nbytes for value in values)
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


def _make_head(model, top_k, class_name_table):
    """model outputs -> {probabilities, classes, scores, class_names}."""
    apply_softmax = not _outputs_probabilities(model)
    k = min(top_k, int(model.outputs[0].shape[-1]))

    def head(outputs):
        outputs = tf.cast(outputs, tf.float32)
        probabilities = tf.nn.softmax(outputs) if apply_softmax else outputs
        scores, classes = tf.math.top_k(probabilities, k=k)
        classes = tf.cast(classes, tf.int64)
        return {
            "probabilities": probabilities,
            "classes": classes,
            "scores": scores,
            "class_names": class_name_table.lookup(classes),
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


def _resize(images, size, interpolation="bilinear"):
    """Resize to `size` (`tf.image.resize`'s `interpolation`, clipped to
    [0, 255]: bicubic and Lanczos overshoot), skipped for images of that
    size already."""
    same = tf.reduce_all(tf.equal(tf.shape(images)[1:3], size))
    resized = tf.cond(same, lambda: images,
                      lambda: _clip(tf.image.resize(images, size, method=interpolation),
                                         interpolation))
    return tf.ensure_shape(resized, [None, *size, images.shape[-1]])


def _clip(pixels, method):
    """Pixels resized with `method`, clipped to [0, 255] where it can
    overshoot (bicubic, Lanczos; bilinear, area and nearest stay within the
    input's range)."""
    if method in ("bilinear", "area", "nearest"):
        return pixels
    return tf.clip_by_value(pixels, 0.0, PIXEL_MAX)


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


def _decode_images(image_bytes, image_shape, crop):
    """A [batch] string tensor of JPEG/PNG images -> float32
    [batch, height, width, channels] pixel values in [0, 255]: each image
    decoded (RGB, or grayscale for one channel), cut and resized as `crop`
    (an `ImageCrop`) says (`crop_image`). The default crop is the Inception
    evaluation pipeline's (`bn_zoo.data.preprocessing.preprocess_for_eval`,
    before its scaling to [-1, 1])."""
    height, width, channels = image_shape

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
            image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        image.set_shape([None, None, channels])
        return crop_image(image, (height, width), crop)

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
        fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32),
    )


def crop_image(image, size, crop):
    """One decoded uint8 image `[H, W, C]` -> float32 `[height, width, C]`
    pixel values in [0, 255], as `crop` (an `ImageCrop`) says, with the
    definitions of the data sources' evaluation crop
    (`bn_zoo.data.images.crop_and_resize`):

    - `"central_fraction"` (TF-slim's evaluation, `tf.image.central_crop`):
      keep the central `fraction` of each side (offsets ⌊(H − H·f)/2⌋,
      ⌊(W − W·f)/2⌋), then resize that to `size`;
    - `"shorter_side"` (torchvision, timm): resize the shorter side to
      R = round(S / f) (halves up; S the output height), the other to
      round(other · R / shorter), then take the central `size` window.

    Resizes are `tf.image.resize` with `crop.interpolation` (half-pixel
    centres, no antialiasing), clipped to [0, 255]."""
    return image_files.crop_and_resize(image, size, crop_fraction=crop.fraction,
                                       crop_mode=crop.mode, interpolation=crop.interpolation)


def _printable(data):
    """Bytes as valid UTF-8 with control characters replaced: the error
    message must be readable (bytes such as a GIF's would make the client's
    decoding of the message fail with a UnicodeDecodeError)."""
    return tf.strings.unicode_transcode(
        data, "UTF-8", "UTF-8", errors="replace", replace_control_characters=True
    )
