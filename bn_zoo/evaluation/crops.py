"""The crop protocols of ImageNet evaluation: 1, 10 or 144 crops per image.

Every protocol takes one decoded image (`tf.io.decode_jpeg(jpeg, channels=3)`:
uint8 RGB, `[H, W, 3]`) and returns its crops as float32 `[n, S, S, 3]` with
values in [0, 255], S = `image_size` the model's input side. The values are
the interpolation's, not rounded; a model's own scaling
(`bn_zoo.models.preprocess_input`) comes after. The crop fraction f
(default 0.875), the crop mode of protocol 1 and the resize method come from
the weights' data config (`bn_zoo.models.DataConfig`); the defaults are the
paper's. Definitions, exact to the pixel (`docs/evaluation.md` has the same
with examples), with the defaults:

- resize(x, h, w) is `tf.image.resize(x, [h, w], method="bilinear",
  antialias=False)` (or the data config's `interpolation`): half-pixel
  centres, so output pixel i of an axis of input length n and output length
  m reads the input at
  c = (i + 1/2)·n/m − 1/2, clamped to [0, n − 1], interpolating linearly
  between pixels ⌊c⌋ and min(⌊c⌋ + 1, n − 1). No antialiasing: shrinking
  samples the input, it does not average it.
- round(p / q), for positive integers, is ⌊p/q + 1/2⌋ = (2p + q) // (2q):
  halves round up, computed exactly in integers.
- Resizing the shorter side to L turns an H×W image into
  L × round(W·L/H) if H ≤ W, else round(H·L/W) × L.
- The five crops of an h×w image are the S×S windows x[t:t+S, l:l+S] at
  (t, l) = centre (⌊(h−S)/2⌋, ⌊(w−S)/2⌋), top-left (0, 0), top-right
  (0, w−S), bottom-left (h−S, 0), bottom-right (h−S, w−S), in this order.
- A mirror reverses a crop's width axis (a left-right flip of the crop).

The protocols:

- 1 crop, crop mode "central_fraction" (default): the central 87.5% (f) of
  each side, as `tf.image.central_crop` and
  `bn_zoo.data.preprocessing.central_crop_window` (offsets ⌊H/16⌋ and
  ⌊W/16⌋, size (H − 2⌊H/16⌋) × (W − 2⌊W/16⌋); in general
  ⌊(H − H·f)/2⌋ computed in float64), resized to S×S. Crop mode
  "shorter_side": the shorter side resized to R = round(S/f), then the
  central S×S crop (the first of the five crops below).
- 10 crops: the shorter side resized to R = round(S/f) = round(8S/7)
  (256 for S = 224), its five crops, then their five mirrors. f is read as
  the decimal it prints as (0.875 = 7/8), so R is exact.
- 144 crops (GoogLeNet, Szegedy et al. 2014, Section 7): for each scale
  k = 256, 288, 320, 352 in turn, the shorter side resized to
  L = round(S·k/224) (k itself for S = 224), giving H'×W'; three L×L squares
  at (t, l) = (0, 0), (⌊(H'−L)/2⌋, ⌊(W'−L)/2⌋), (H'−L, W'−L): left, centre,
  right of a landscape image, top, centre, bottom of a portrait one, three
  times the whole image for a square one; for each square its five crops,
  then the square resized to S×S. These 4·3·6 = 72 crops, then their 72
  mirrors in the same order.

R > S (R ≥ S for f = 1) and L > S for every S, so every crop fits. Cost per image: 1 crop is
one resize of the central window; 10 crops one resize of the image and ten
S×S copies; 144 crops four resizes of the image, twelve of a square and 144
S×S×3 float32 crops (87 MB at S = 224). The model's cost is that of n
single-crop evaluations.
"""

import fractions

import tensorflow as tf

from bn_zoo.data import preprocessing
from bn_zoo.models import catalogue

PROTOCOLS = (1, 10, 144)
PROTOCOL_NAMES = {
    1: "1 crop (central 87.5%)",
    10: "10 crops (shorter side S/0.875; 4 corners, centre, mirrors)",
    144: "144 crops (GoogLeNet: 4 scales x 3 squares x 6 crops x 2 mirrors)",
}
CENTRAL_FRACTION = 0.875
CROP_MODE = "central_fraction"
INTERPOLATION = "bilinear"
# GoogLeNet's shorter sides, for its 224 x 224 input.
GOOGLENET_SCALES = (256, 288, 320, 352)
GOOGLENET_INPUT_SIZE = 224


def check_protocol(protocol):
    """Raises `ValueError` unless `protocol` is one of `PROTOCOLS`."""
    if isinstance(protocol, bool) or protocol not in PROTOCOLS:
        raise ValueError(
            f"The crop protocol must be one of {PROTOCOLS} (crops per image); "
            f"received {protocol!r}.")


def _check_image_size(image_size):
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"`image_size` must be a positive integer; received {image_size!r}.")


def round_ratio(numerator, denominator):
    """round(numerator / denominator) for positive integers (Python ints or
    integer tensors), halves rounded up, exactly: (2p + q) // (2q)."""
    return (2 * numerator + denominator) // (2 * denominator)


def check_crop(crop_fraction=CENTRAL_FRACTION, crop_mode=CROP_MODE,
               interpolation=INTERPOLATION):
    """Raises `ValueError` unless the three are what a `DataConfig` allows."""
    catalogue.DataConfig(input_shape=None, preprocessing="inception",
                         crop_fraction=crop_fraction, crop_mode=crop_mode,
                         interpolation=interpolation)


def describe(protocol, crop_fraction=CENTRAL_FRACTION, crop_mode=CROP_MODE,
             interpolation=INTERPOLATION):
    """The protocol in words (`PROTOCOL_NAMES` for the paper's crop)."""
    check_protocol(protocol)
    f = f"{crop_fraction:g}"
    if protocol == 1 and crop_mode == "shorter_side":
        text = f"1 crop (shorter side S/{f}, central SxS)"
    elif protocol == 1:
        text = f"1 crop (central {100 * crop_fraction:g}%)"
    elif protocol == 10:
        text = f"10 crops (shorter side S/{f}; 4 corners, centre, mirrors)"
    else:
        text = PROTOCOL_NAMES[144]
    if interpolation != INTERPOLATION:
        text = f"{text[:-1]}, {interpolation})"
    return text


def ten_crop_side(image_size, crop_fraction=CENTRAL_FRACTION):
    """The shorter side of the 10-crop protocol (and of protocol 1 in crop
    mode "shorter_side"): round(S / f), halves up, exactly, with f read as
    the decimal it prints as: round(8S/7) = 256 for S = 224 and f = 0.875."""
    _check_image_size(image_size)
    fraction = fractions.Fraction(repr(float(crop_fraction)))
    return round_ratio(image_size * fraction.denominator, fraction.numerator)


def googlenet_sides(image_size):
    """The four shorter sides of the 144-crop protocol: round(S·k/224) for
    k in (256, 288, 320, 352)."""
    _check_image_size(image_size)
    return tuple(round_ratio(image_size * k, GOOGLENET_INPUT_SIZE) for k in GOOGLENET_SCALES)


def num_crops(protocol):
    """Crops per image of `protocol` (the protocol's own number)."""
    check_protocol(protocol)
    return protocol


def resize(image, height, width, interpolation=INTERPOLATION):
    """Resize (bilinear by default) with half-pixel centres and no
    antialiasing, float32."""
    size = tf.cast(tf.stack([height, width]), tf.int32)
    return tf.cast(tf.image.resize(image, size, method=interpolation, antialias=False),
                   tf.float32)


def resize_shorter_side(image, side, interpolation=INTERPOLATION):
    """`image` `[H, W, C]` resized so that its shorter side is `side`, the
    longer one round(longer · side / shorter)."""
    shape = tf.shape(image, out_type=tf.int64)
    height, width = shape[0], shape[1]
    side = tf.constant(side, tf.int64)
    landscape = height <= width
    new_height = tf.where(landscape, side, round_ratio(height * side, width))
    new_width = tf.where(landscape, round_ratio(width * side, height), side)
    return resize(image, new_height, new_width, interpolation)


def five_crops(image, size):
    """`[5, size, size, C]`: centre, top-left, top-right, bottom-left,
    bottom-right windows of `image` `[h, w, C]` (h, w >= size)."""
    shape = tf.shape(image)
    bottom, right = shape[0] - size, shape[1] - size
    corners = ((bottom // 2, right // 2), (0, 0), (0, right), (bottom, 0), (bottom, right))
    return tf.stack([image[top:top + size, left:left + size] for top, left in corners])


def with_mirrors(crops):
    """`crops` `[n, h, w, C]` followed by their left-right mirrors: `[2n, h, w, C]`."""
    return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)


def central_crop(image, image_size, crop_fraction=CENTRAL_FRACTION, crop_mode=CROP_MODE,
                 interpolation=INTERPOLATION):
    """Protocol 1: `[1, S, S, 3]`."""
    if crop_mode == "shorter_side":
        scaled = resize_shorter_side(
            image, ten_crop_side(image_size, crop_fraction), interpolation)
        return five_crops(scaled, image_size)[:1]
    shape = tf.shape(image)
    top, left, height, width = preprocessing.central_crop_window(
        (shape[0], shape[1]), crop_fraction)
    window = image[top:top + height, left:left + width]
    return resize(window, image_size, image_size, interpolation)[tf.newaxis]


def ten_crops(image, image_size, crop_fraction=CENTRAL_FRACTION, crop_mode=CROP_MODE,
              interpolation=INTERPOLATION):
    """Protocol 10: `[10, S, S, 3]`, five crops then their mirrors (the crop
    mode does not apply)."""
    scaled = resize_shorter_side(image, ten_crop_side(image_size, crop_fraction), interpolation)
    return with_mirrors(five_crops(scaled, image_size))


def googlenet_crops(image, image_size, crop_fraction=CENTRAL_FRACTION, crop_mode=CROP_MODE,
                    interpolation=INTERPOLATION):
    """Protocol 144: `[144, S, S, 3]` in the module docstring's order (its
    scales are GoogLeNet's: the crop fraction and mode do not apply)."""
    crops = []
    for side in googlenet_sides(image_size):
        scaled = resize_shorter_side(image, side, interpolation)
        shape = tf.shape(scaled)
        bottom, right = shape[0] - side, shape[1] - side
        for top, left in ((0, 0), (bottom // 2, right // 2), (bottom, right)):
            square = scaled[top:top + side, left:left + side]
            crops.append(five_crops(square, image_size))
            crops.append(resize(square, image_size, image_size, interpolation)[tf.newaxis])
    return with_mirrors(tf.concat(crops, axis=0))


_CROPPERS = {1: central_crop, 10: ten_crops, 144: googlenet_crops}


def crop_image(image, protocol, image_size, crop_fraction=CENTRAL_FRACTION,
               crop_mode=CROP_MODE, interpolation=INTERPOLATION):
    """The crops of one image under `protocol` (see the module docstring).

    Args:
        image: Decoded uint8 RGB image `[H, W, 3]` (any H, W >= 1).
        protocol: 1, 10 or 144.
        image_size: S, the side of the square crops.
        crop_fraction: f of protocols 1 and 10, in (0, 1]
            (`DataConfig.crop_fraction`).
        crop_mode: Protocol 1's crop, "central_fraction" or "shorter_side"
            (`DataConfig.crop_mode`).
        interpolation: The resize method (`DataConfig.interpolation`).

    Returns:
        float32 `[protocol, S, S, 3]`, values in [0, 255] (bicubic and
        Lanczos resizes may overshoot them a little).

    Raises:
        ValueError: an unknown protocol, crop fraction, crop mode or
            interpolation, or a bad `image_size`.
        TypeError: `image` is not uint8.
    """
    check_protocol(protocol)
    _check_image_size(image_size)
    check_crop(crop_fraction, crop_mode, interpolation)
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise TypeError(
            f"Crops are made from decoded uint8 images (tf.io.decode_jpeg); "
            f"received {image.dtype.name}.")
    crops = _CROPPERS[protocol](image, image_size, crop_fraction, crop_mode, interpolation)
    return tf.ensure_shape(tf.cast(crops, tf.float32), [protocol, image_size, image_size, 3])
