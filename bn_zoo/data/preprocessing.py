"""Inception-style image preprocessing for the ImageNet experiments (Section 4.2).

The paper trains its Inception variants with the usual Inception input
pipeline and, for the BN networks, "reduce[s] the photometric distortions"
(Section 4.2.1): `distortion_strength` scales them, from 0 (none) to 1 (the
usual Inception strength).

Training: a random crop covering `area_range` of the image with an aspect
ratio in `aspect_ratio_range`, decoded together with the JPEG
(`tf.image.decode_and_crop_jpeg`, so only the crop is decompressed), resized to
`image_size` × `image_size`, flipped left-right with probability 1/2, then
brightness, saturation, hue and contrast changes applied in one of four orders.

Evaluation: the central `central_fraction` of each side, resized.

Both return `image_size × image_size × 3` images with values in [-1, 1] (the
Inception convention: 2·x/255 − 1), in `dtype` (float32, or bfloat16 / float16
for mixed precision, so the cast happens on the input workers).

All randomness is stateless and drawn from one `seed` per image (a `[2]`
integer tensor), so an image preprocessed twice with the same seed is
identical whatever the `tf.data` parallelism.
"""

import tensorflow as tf

# Photometric distortions at distortion_strength=1 (the Inception recipe):
# brightness delta, saturation and contrast factor spread, hue delta.
MAX_BRIGHTNESS_DELTA = 32.0 / 255.0
SATURATION_SPREAD = 0.5
MAX_HUE_DELTA = 0.2
CONTRAST_SPREAD = 0.5

# Four orders of the photometric ops; each image gets one at random, because
# the ops do not commute.
_COLOR_ORDERS = (
    ("brightness", "saturation", "hue", "contrast"),
    ("saturation", "brightness", "contrast", "hue"),
    ("contrast", "hue", "brightness", "saturation"),
    ("hue", "saturation", "contrast", "brightness"),
)

OUTPUT_DTYPES = ("float32", "bfloat16", "float16")


def output_dtype(dtype):
    """The `tf.DType` for `dtype` ("float32", "bfloat16", "float16" or a DType)."""
    name = tf.as_dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in OUTPUT_DTYPES:
        raise ValueError(
            f"`dtype` must be one of {OUTPUT_DTYPES}; received {dtype!r}. Use "
            "'bfloat16' with the mixed_bfloat16 policy, 'float16' with "
            "mixed_float16, 'float32' otherwise."
        )
    return tf.as_dtype(name)


def _check_range(name, value, low, high):
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(
            f"`{name}` must be (min, max) with {low} <= min <= max <= {high}; "
            f"received {tuple(value)!r}."
        )


def _check_strength(distortion_strength):
    if not 0.0 <= distortion_strength <= 1.0:
        raise ValueError(
            f"`distortion_strength` must be in [0, 1] (0: no photometric distortion, "
            f"1: the Inception recipe); received {distortion_strength!r}."
        )


def _check_central_fraction(central_fraction):
    if not 0.0 < central_fraction <= 1.0:
        raise ValueError(
            f"`central_fraction` must be in (0, 1]; received {central_fraction!r}."
        )


def check_options(image_size=224, distortion_strength=1.0, area_range=(0.08, 1.0),
                  aspect_ratio_range=(3 / 4, 4 / 3), central_fraction=0.875,
                  dtype="float32"):
    """Raises `ValueError`, saying what is expected, on a bad option."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"`image_size` must be a positive integer; received {image_size!r}.")
    _check_strength(distortion_strength)
    _check_range("area_range", area_range, 0.0, 1.0)
    if area_range[0] <= 0.0:
        raise ValueError(f"`area_range` must start above 0; received {tuple(area_range)!r}.")
    _check_range("aspect_ratio_range", aspect_ratio_range, 1e-3, 1e3)
    _check_central_fraction(central_fraction)
    output_dtype(dtype)


def _image_shape(image):
    """(height, width) of encoded JPEG bytes or of a decoded HWC image."""
    if image.dtype == tf.string:
        shape = tf.image.extract_jpeg_shape(image)
    else:
        shape = tf.shape(image)
    return shape[0], shape[1]


def _crop(image, offset_height, offset_width, height, width):
    """Crops (and for JPEG bytes decodes only) the given window, as uint8 RGB."""
    if image.dtype == tf.string:
        window = tf.stack([offset_height, offset_width, height, width])
        return tf.image.decode_and_crop_jpeg(image, window, channels=3)
    return tf.image.crop_to_bounding_box(image, offset_height, offset_width, height, width)


def _resize_to_unit_range(image, image_size):
    """Bilinear resize to a square, as float32 in [0, 1]."""
    if image.dtype != tf.uint8:
        raise TypeError(
            f"Images must be JPEG bytes or decoded uint8; received {image.dtype.name}."
        )
    return tf.image.resize(image, [image_size, image_size], method="bilinear") / 255.0


def _to_output(image, image_size, dtype):
    image = tf.ensure_shape(image * 2.0 - 1.0, [image_size, image_size, 3])
    return tf.cast(image, output_dtype(dtype))


def _random_seed():
    return tf.random.uniform([2], maxval=tf.int32.max, dtype=tf.int32)


def random_crop_window(image_shape, seed, area_range=(0.08, 1.0),
                       aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10):
    """A random crop window `(offset_height, offset_width, height, width)`.

    The window covers a fraction of the image area drawn from `area_range`, with
    width/height in `aspect_ratio_range`; after `max_attempts` failures it is
    the whole image (as in `tf.image.sample_distorted_bounding_box`).
    """
    whole_image = tf.constant([[[0.0, 0.0, 1.0, 1.0]]])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.stack([image_shape[0], image_shape[1], 3]),
        bounding_boxes=whole_image,
        seed=seed,
        # With the whole image as the only box, "covered fraction of the box"
        # is the crop's area fraction: keep it at the bottom of area_range.
        min_object_covered=area_range[0],
        aspect_ratio_range=aspect_ratio_range,
        area_range=area_range,
        max_attempts=max_attempts,
        use_image_if_no_bounding_boxes=True,
    )
    return begin[0], begin[1], size[0], size[1]


def distort_color(image, distortion_strength=1.0, seed=None):
    """Random brightness, saturation, hue and contrast, in a random order.

    Args:
        image: Float RGB image(s) with values in [0, 1].
        distortion_strength: Float in [0, 1] scaling every distortion's range;
            0 returns `image` unchanged, 1 is the Inception recipe (brightness
            ±32/255, saturation and contrast ×[0.5, 1.5], hue ±0.2).
        seed: `[2]` integer tensor; random if None.

    Returns:
        The distorted image, clipped to [0, 1].
    """
    _check_strength(distortion_strength)
    strength = float(distortion_strength)
    if strength == 0.0:
        return image
    seed = _random_seed() if seed is None else seed
    order_seed, *op_seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 5))
    op_seeds = dict(zip(_COLOR_ORDERS[0], op_seeds))
    saturation = (1.0 - SATURATION_SPREAD * strength, 1.0 + SATURATION_SPREAD * strength)
    contrast = (1.0 - CONTRAST_SPREAD * strength, 1.0 + CONTRAST_SPREAD * strength)
    ops = {
        "brightness": lambda x: tf.image.stateless_random_brightness(
            x, MAX_BRIGHTNESS_DELTA * strength, op_seeds["brightness"]),
        "saturation": lambda x: tf.image.stateless_random_saturation(
            x, *saturation, op_seeds["saturation"]),
        "hue": lambda x: tf.image.stateless_random_hue(
            x, MAX_HUE_DELTA * strength, op_seeds["hue"]),
        "contrast": lambda x: tf.image.stateless_random_contrast(
            x, *contrast, op_seeds["contrast"]),
    }

    def apply(order):
        def branch():
            x = image
            for name in order:
                x = ops[name](x)
            return x
        return branch

    which = tf.random.stateless_uniform(
        [], order_seed, maxval=len(_COLOR_ORDERS), dtype=tf.int32)
    image = tf.switch_case(which, [apply(order) for order in _COLOR_ORDERS])
    return tf.clip_by_value(image, 0.0, 1.0)


def preprocess_for_train(image, seed=None, image_size=224, distortion_strength=1.0,
                         area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3),
                         dtype="float32"):
    """One training image: random-size crop, resize, flip, photometric distortions.

    Args:
        image: Scalar string tensor of JPEG bytes (decoded together with the
            crop), or a decoded `[height, width, 3]` uint8 image.
        seed: `[2]` integer tensor from which all randomness of this image is
            drawn (crop, flip, distortions); random if None.
        image_size: Output height and width.
        distortion_strength: Float in [0, 1] scaling the photometric
            distortions (see `distort_color`).
        area_range: Range of the crop's fraction of the image area.
        aspect_ratio_range: Range of the crop's width / height.
        dtype: Output dtype: "float32", "bfloat16" or "float16".

    Returns:
        `[image_size, image_size, 3]` tensor in [-1, 1].
    """
    check_options(image_size, distortion_strength, area_range, aspect_ratio_range,
                  dtype=dtype)
    seed = _random_seed() if seed is None else seed
    crop_seed, flip_seed, color_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3))
    window = random_crop_window(
        _image_shape(image), crop_seed, area_range, aspect_ratio_range)
    image = _resize_to_unit_range(_crop(image, *window), image_size)
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    image = distort_color(image, distortion_strength, color_seed)
    return _to_output(image, image_size, dtype)


def central_crop_window(image_shape, central_fraction=0.875):
    """The window `(offset_height, offset_width, height, width)` keeping the
    central `central_fraction` of each side (as `tf.image.central_crop`)."""
    _check_central_fraction(central_fraction)
    window = []
    for side in image_shape[:2]:
        side = tf.cast(side, tf.float64)
        offset = tf.cast((side - side * central_fraction) / 2.0, tf.int32)
        window.append((offset, tf.cast(side, tf.int32) - 2 * offset))
    (top, height), (left, width) = window
    return top, left, height, width


def preprocess_for_eval(image, image_size=224, central_fraction=0.875, dtype="float32"):
    """One evaluation image: central crop and resize, deterministic.

    Args:
        image: Scalar string tensor of JPEG bytes, or a decoded uint8 image.
        image_size: Output height and width.
        central_fraction: Fraction of each side kept around the centre.
        dtype: Output dtype: "float32", "bfloat16" or "float16".

    Returns:
        `[image_size, image_size, 3]` tensor in [-1, 1].
    """
    check_options(image_size, central_fraction=central_fraction, dtype=dtype)
    window = central_crop_window(_image_shape(image), central_fraction)
    image = _resize_to_unit_range(_crop(image, *window), image_size)
    return _to_output(image, image_size, dtype)
