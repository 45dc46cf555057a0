"""Image files to model inputs: formats, decoding, crops, augmentation.

The operations behind the `image_folder` and `tfds` data sources. Formats
and decoding follow `keras.utils.image_dataset_from_directory`: the file
extensions `.bmp .gif .jpeg .jpg .png` (any case), decoded by content with
`tf.io.decode_image(..., expand_animations=False)` (a GIF's first frame),
to 1 or 3 channels (grey is repeated to RGB, RGB averaged to grey with
TensorFlow's weights).

Evaluation (and training without `random_crop`) cuts an image to the
model's input as its weights' data config says (`crop_and_resize`, the
same definitions as the exported `image_bytes` signature of
`bn_zoo.export`): `"central_fraction"` keeps the central fraction f of each
side (offsets ⌊(H − H·f)/2⌋, ⌊(W − W·f)/2⌋) and resizes it;
`"shorter_side"` resizes the shorter side to round(S / f) and takes the
central S×S. Resizes are `tf.image.resize` (half-pixel centres, no
antialiasing), clipped to [0, 255]. Outputs are float32 pixel values in
[0, 255], before the model's scaling.

Training augmentation (`augment`) is drawn from one `[2]` seed per image
with stateless ops, so the same (seed, image) gives the same crop and flip
whatever the parallelism: that is what lets a resumed run see exactly the
images an uninterrupted run sees.
"""

import fractions

import tensorflow as tf

from bn_zoo.data import preprocessing

# keras.utils.image_dataset_from_directory's formats.
EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# The first bytes of each format (what tf.io.decode_image looks at).
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)
SIGNATURE_BYTES = 8
CROP_MODES = ("central_fraction", "shorter_side")


def image_format(first_bytes):
    """"JPEG", "PNG", "GIF" or "BMP" from a file's first bytes, or None."""
    for signature, name in _SIGNATURES:
        if first_bytes.startswith(signature):
            return name
    return None


def has_image_extension(file_name):
    return file_name.lower().endswith(EXTENSIONS)


def decode(contents, channels):
    """Encoded JPEG, PNG, GIF (first frame) or BMP bytes -> uint8
    `[H, W, channels]`."""
    image = tf.io.decode_image(contents, channels=channels, expand_animations=False)
    image.set_shape([None, None, channels])
    return image


def _resized(pixels, size, interpolation):
    resized = tf.image.resize(pixels, size, method=interpolation, antialias=False)
    if interpolation in ("bilinear", "nearest", "area"):
        return resized  # Convex combinations stay in [0, 255].
    return tf.clip_by_value(resized, 0.0, 255.0)


def _round_ratio(numerator, denominator):
    """round(p / q), halves up, for positive integer tensors."""
    return (2 * numerator + denominator) // (2 * denominator)


def crop_and_resize(image, size, crop_fraction=0.875, crop_mode="central_fraction",
                    interpolation="bilinear"):
    """One decoded image `[H, W, C]` -> float32 `[height, width, C]` in
    [0, 255], cut as the module docstring says.

    Args:
        image: uint8 (or float) `[H, W, C]`.
        size: (height, width) of the output; S in "shorter_side" is the height.
        crop_fraction: f in (0, 1].
        crop_mode: "central_fraction" or "shorter_side".
        interpolation: A `tf.image.resize` method.
    """
    height, width = size
    pixels = tf.cast(image, tf.float32)
    if crop_mode == "central_fraction":
        shape = tf.shape(image)
        top, left, rows, columns = preprocessing.central_crop_window(
            (shape[0], shape[1]), crop_fraction)
        window = pixels[top:top + rows, left:left + columns]
        return _resized(window, [height, width], interpolation)
    if crop_mode != "shorter_side":
        raise ValueError(f"`crop_mode` must be one of {CROP_MODES}. Received: {crop_mode!r}")
    side = int(fractions.Fraction(height) / fractions.Fraction(repr(float(crop_fraction)))
               + fractions.Fraction(1, 2))
    shape = tf.shape(image, out_type=tf.int64)
    rows, columns = shape[0], shape[1]
    landscape = rows <= columns
    new_rows = tf.where(landscape, tf.constant(side, tf.int64), _round_ratio(rows * side, columns))
    new_columns = tf.where(landscape, _round_ratio(columns * side, rows),
                           tf.constant(side, tf.int64))
    resized = _resized(pixels, tf.cast(tf.stack([new_rows, new_columns]), tf.int32),
                       interpolation)
    top = tf.cast((new_rows - height) // 2, tf.int32)
    left = tf.cast((new_columns - width) // 2, tf.int32)
    return resized[top:top + height, left:left + width]


def augment(image, size, seed, *, random_crop=False, random_flip=False,
            area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3),
            crop_fraction=0.875, crop_mode="central_fraction", interpolation="bilinear"):
    """One training image: a random crop (or the evaluation crop), resized,
    maybe flipped; float32 `[height, width, C]` in [0, 255].

    Args:
        image: uint8 `[H, W, C]`.
        size: (height, width).
        seed: `[2]` integer tensor; all randomness of this image.
        random_crop: A window covering a fraction of the area drawn from
            `area_range`, with width/height in `aspect_ratio_range`
            (`bn_zoo.data.preprocessing.random_crop_window`, Inception's
            random-size crop); False: the evaluation crop.
        random_flip: Flip left-right with probability 1/2.
        crop_fraction, crop_mode, interpolation: The evaluation crop and
            the resize method (`crop_and_resize`).
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if random_crop:
        shape = tf.shape(image)
        top, left, rows, columns = preprocessing.random_crop_window(
            (shape[0], shape[1]), crop_seed, tuple(area_range), tuple(aspect_ratio_range))
        window = tf.cast(image[top:top + rows, left:left + columns], tf.float32)
        pixels = _resized(window, list(size), interpolation)
    else:
        pixels = crop_and_resize(image, size, crop_fraction, crop_mode, interpolation)
    if random_flip:
        pixels = tf.image.stateless_random_flip_left_right(pixels, flip_seed)
    return pixels
