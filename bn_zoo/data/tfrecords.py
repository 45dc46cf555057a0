"""The standard ImageNet TFRecord layout: shard names, records, a test generator.

The layout is the one written by the TensorFlow ImageNet conversion scripts:
one directory holding `train-00000-of-01024` … `train-01023-of-01024` and
`validation-00000-of-00128` … `validation-00127-of-00128`, each a TFRecord file
of `tf.train.Example`s with (among others)

    image/encoded      bytes   the JPEG file
    image/class/label  int64   1..1000 (0 is reserved for "background")

so the class index is `label - label_offset` with `label_offset=1`.

`write_synthetic_imagenet` writes the same layout with real JPEGs whose label
can be learned from the image, for tests and benchmarks.
"""

import os
import re
import uuid

import numpy as np
import tensorflow as tf

IMAGE_KEY = "image/encoded"
LABEL_KEY = "image/class/label"
STANDARD_LABEL_OFFSET = 1
_SHARD_NAME = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<total>\d{5})$")


class DataError(ValueError):
    """The input data is missing, malformed or inconsistent with the config."""


class DataNotFoundError(DataError, FileNotFoundError):
    """The input data (directory, shards or prepared data set) does not exist."""


def shard_name(split, index, total):
    """`shard_name("train", 3, 1024)` → `"train-00003-of-01024"`."""
    if not 0 <= index < total <= 99999:
        raise ValueError(f"Need 0 <= index < total <= 99999; received {index}, {total}.")
    return f"{split}-{index:05d}-of-{total:05d}"


def parse_shard_name(name):
    """`(split, index, total)` of a shard file name, or None if it is not one."""
    match = _SHARD_NAME.match(os.path.basename(name))
    if match is None:
        return None
    return match["split"], int(match["index"]), int(match["total"])


def list_shards(data_dir, split):
    """The sorted paths of `split`'s shards in `data_dir`.

    Raises:
        DataNotFoundError: `data_dir` is unset, missing or empty, or holds no
            `{split}-NNNNN-of-NNNNN` shard.
        DataError: the shards disagree on their total, or some are missing.
    """
    if not data_dir:
        raise DataNotFoundError(
            "No data directory: set `data_dir` to the directory holding the "
            f"`{split}-00000-of-NNNNN` TFRecord shards."
        )
    if not tf.io.gfile.isdir(data_dir):
        raise DataNotFoundError(
            f"The data directory {data_dir!r} does not exist or is not a directory. "
            "Point `data_dir` at the directory holding the TFRecord shards "
            f"(`{split}-00000-of-NNNNN`, ...)."
        )
    names = sorted(tf.io.gfile.listdir(data_dir))
    if not names:
        raise DataNotFoundError(
            f"The data directory {data_dir!r} is empty. Write the TFRecord shards "
            f"(`{split}-00000-of-NNNNN`, ...) there, or point `data_dir` elsewhere."
        )
    shards = {}
    for name in names:
        parsed = parse_shard_name(name)
        if parsed is not None and parsed[0] == split:
            shards[name] = parsed
    if not shards:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise DataNotFoundError(
            f"No `{split}` shard in {data_dir!r}: expected files named "
            f"`{split}-NNNNN-of-NNNNN` (e.g. `{shard_name(split, 0, 1024)}`), found: "
            f"{shown}. Check `data_dir` and the split name."
        )
    totals = sorted({total for _, _, total in shards.values()})
    if len(totals) > 1:
        raise DataError(
            f"The `{split}` shards in {data_dir!r} disagree on their count "
            f"(`-of-` {totals}); they come from different conversions. Keep one set."
        )
    missing = sorted(set(range(totals[0])) - {index for _, index, _ in shards.values()})
    if missing:
        shown = ", ".join(shard_name(split, i, totals[0]) for i in missing[:5])
        raise DataError(
            f"{len(missing)} of the {totals[0]} `{split}` shards are missing from "
            f"{data_dir!r} ({shown}{', ...' if len(missing) > 5 else ''}). Copy "
            "them there, or re-create the shards."
        )
    return [os.path.join(data_dir, name) for name in sorted(shards)]


def make_example(image_bytes, label, height=None, width=None):
    """A `tf.train.Example` in the standard layout (label as stored: 1..1000)."""
    feature = {
        IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes])),
        LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"])),
    }
    for key, value in (("image/height", height), ("image/width", width)):
        if value is not None:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def parse_example(serialized):
    """`(image_bytes, stored_label)` of a serialized Example.

    A missing image gives `""` and a missing label −1, so both surface in the
    pipeline's checks as a bad image / an out-of-range label.
    """
    features = tf.io.parse_single_example(serialized, {
        IMAGE_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    })
    return features[IMAGE_KEY], features[LABEL_KEY]


def write_records(path, serialized_records):
    """Writes a TFRecord file atomically (temporary file, then rename)."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for record in serialized_records:
                writer.write(record)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)
    return path


def synthetic_image(class_index, num_classes, height, width, rng):
    """A uint8 RGB image whose class shows in its colour and stripe direction.

    The hue is `class_index / num_classes` and the stripes are horizontal for
    even classes, vertical for odd ones; noise, brightness and stripe phase
    vary per image. Random crops, flips and mild photometric distortions keep
    the class recognisable.
    """
    hue = class_index / num_classes
    hsv = np.array([hue, 0.75, 0.55 + 0.3 * rng.random()], np.float32)
    rgb = tf.image.hsv_to_rgb(hsv).numpy() * 255.0
    period = max(4, min(height, width) // 6)
    axis = np.arange(height if class_index % 2 == 0 else width)
    stripes = np.sin(2 * np.pi * (axis / period + rng.random())) * 40.0
    stripes = stripes[:, None] if class_index % 2 == 0 else stripes[None, :]
    image = rgb[None, None, :] + stripes[..., None] + rng.normal(0, 8, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_synthetic_imagenet(data_dir, num_train=64, num_validation=32, num_classes=4,
                             image_size=(48, 40), num_train_shards=4,
                             num_validation_shards=2, size_jitter=0.25,
                             label_offset=STANDARD_LABEL_OFFSET, seed=0):
    """Writes a small ImageNet-layout data set of real JPEGs.

    Args:
        data_dir: Directory to write into (created if missing).
        num_train, num_validation: Number of examples per split; the classes
            are balanced and the examples shuffled across shards.
        num_classes: Number of classes; stored labels are
            `class + label_offset`.
        image_size: Mean `(height, width)` of the images.
        num_train_shards, num_validation_shards: Shards per split (a split
            with 0 examples is not written).
        size_jitter: Each side is drawn uniformly within ±this fraction of the
            mean, so images have different shapes as in ImageNet.
        label_offset: Added to the class index when stored (1 in the
            standard layout).
        seed: Seed of the generator; the same arguments give the same files.

    Returns:
        `{"train": [paths], "validation": [paths]}`.
    """
    if num_classes < 1 or num_train < 0 or num_validation < 0:
        raise ValueError("Need num_classes >= 1 and non-negative example counts.")
    rng = np.random.default_rng(seed)
    tf.io.gfile.makedirs(data_dir)
    written = {}
    for split, count, num_shards in (("train", num_train, num_train_shards),
                                     ("validation", num_validation, num_validation_shards)):
        if count == 0:
            written[split] = []
            continue
        if not 1 <= num_shards <= count:
            raise ValueError(
                f"Need 1 <= num_{split}_shards <= num_{split} ({count}); received {num_shards}."
            )
        classes = rng.permutation(np.arange(count) % num_classes)
        paths = []
        for index, chunk in enumerate(np.array_split(classes, num_shards)):
            records = []
            for class_index in chunk:
                height, width = (
                    max(8, int(round(side * (1 + size_jitter * rng.uniform(-1, 1)))))
                    for side in image_size
                )
                pixels = synthetic_image(int(class_index), num_classes, height, width, rng)
                jpeg = tf.io.encode_jpeg(pixels, quality=90).numpy()
                example = make_example(jpeg, class_index + label_offset, height, width)
                records.append(example.SerializeToString())
            path = os.path.join(data_dir, shard_name(split, index, num_shards))
            paths.append(write_records(path, records))
        written[split] = paths
    return written
