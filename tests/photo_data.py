"""Real photos for the data-source tests: scikit-image's bundled pictures
(astronaut, coffee, chelsea the cat, rocket), cut into small crops per class
and saved with PIL as JPEG, PNG, BMP and GIF files, or as a tiny TFDS
builder prepared offline.

`reference_image` decodes a file independently of TensorFlow (PIL) and
`bilinear_resize` is the half-pixel bilinear formula in float64 numpy: the
oracle the pipelines' outputs are compared with.
"""

import os

import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
FORMATS = ("jpg", "png", "bmp", "gif")


def photo(name):
    import skimage.data

    return getattr(skimage.data, name)()[..., :3]


def crop(name, rng, size):
    """A random crop of photo `name` (a third to a half of each side),
    resized by PIL to `size` = (width, height)."""
    image = photo(name)
    height, width = image.shape[:2]
    rows = int(rng.integers(height // 3, height // 2))
    columns = int(rng.integers(width // 3, width // 2))
    top = int(rng.integers(0, height - rows))
    left = int(rng.integers(0, width - columns))
    return Image.fromarray(image[top:top + rows, left:left + columns]).resize(size)


def save(image, path):
    """Saves a PIL image; the format comes from the extension."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.lower().endswith((".jpg", ".jpeg")):
        image.save(path, quality=90)
    else:
        image.save(path)
    return path


def write_folder(root, classes=PHOTOS[:3], per_class=6, seed=0, formats=FORMATS):
    """One subfolder per class, `per_class` crops of its photo each, the
    formats in turn and sizes between 24 and 47 pixels a side. Returns
    {class: [paths]}."""
    rng = np.random.default_rng(seed)
    written = {}
    for name in classes:
        written[name] = []
        for i in range(per_class):
            size = (int(rng.integers(24, 48)), int(rng.integers(24, 48)))
            extension = formats[i % len(formats)]
            path = os.path.join(root, name, f"{name}_{i:02d}.{extension}")
            written[name].append(save(crop(name, rng, size), path))
    return written


def reference_image(path, channels=3):
    """The file's pixels, uint8 HWC: PNG, BMP and GIF (first frame) decoded
    by PIL; JPEG by `tf.io.decode_jpeg` on the single file (JPEG decoders
    differ by a few levels: PIL's libjpeg is not TensorFlow's)."""
    if path.lower().endswith((".jpg", ".jpeg")):
        import tensorflow as tf

        return tf.io.decode_jpeg(tf.io.read_file(path), channels=channels).numpy()
    with Image.open(path) as image:
        image.seek(0)
        return np.asarray(image.convert("RGB" if channels == 3 else "L")).reshape(
            image.size[1], image.size[0], channels)


def bilinear_resize(image, height, width):
    """tf.image.resize(..., "bilinear", antialias=False) in float64: output
    pixel i of an axis of input length n reads the input at
    c = (i + 1/2)·n/m − 1/2, clamped to [0, n − 1], between ⌊c⌋ and
    min(⌊c⌋ + 1, n − 1)."""
    image = np.asarray(image, np.float64)

    def axis(n, m):
        c = np.clip((np.arange(m) + 0.5) * n / m - 0.5, 0, n - 1)
        low = np.floor(c).astype(int)
        return low, np.minimum(low + 1, n - 1), c - low

    r0, r1, fr = axis(image.shape[0], height)
    c0, c1, fc = axis(image.shape[1], width)
    rows = image[r0] * (1 - fr)[:, None, None] + image[r1] * fr[:, None, None]
    return rows[:, c0] * (1 - fc)[None, :, None] + rows[:, c1] * fc[None, :, None]


def central_crop_resize(image, height, width, fraction=0.875):
    """The evaluation crop "central_fraction": offsets ⌊(H − H·f)/2⌋,
    ⌊(W − W·f)/2⌋ (float64), then the bilinear resize."""
    rows, columns = image.shape[:2]
    top = int((rows - rows * fraction) / 2)
    left = int((columns - columns * fraction) / 2)
    window = image[top:rows - top, left:columns - left]
    return bilinear_resize(window, height, width)


def shorter_side_resize(image, size, fraction=0.875):
    """The evaluation crop "shorter_side": the shorter side resized to
    R = round(S / f) (halves up), the other to round(other · R / shorter),
    then the central S×S."""
    from fractions import Fraction

    side = int(Fraction(size) / Fraction(repr(fraction)) + Fraction(1, 2))
    rows, columns = image.shape[:2]
    if rows <= columns:
        new_rows, new_columns = side, (2 * columns * side + rows) // (2 * rows)
    else:
        new_rows, new_columns = (2 * rows * side + columns) // (2 * columns), side
    resized = bilinear_resize(image, new_rows, new_columns)
    top, left = (new_rows - size) // 2, (new_columns - size) // 2
    return resized[top:top + size, left:left + size]


def prepare_photo_builder(data_dir, num_train=24, num_test=8, seed=0):
    """A TFDS image classification set prepared offline under `data_dir`:
    `photo_classes` with JPEG crops of the PHOTOS (label names = PHOTOS),
    splits train and test. Returns the builder."""
    import tensorflow_datasets as tfds

    builder = PhotoClasses(data_dir=data_dir, config=None)
    builder.seed = seed
    builder.sizes = {"train": num_train, "test": num_test}
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return builder


def _photo_builder_class():
    import tensorflow_datasets as tfds

    class PhotoClasses(tfds.core.GeneratorBasedBuilder):
        """Crops of scikit-image's photos, one class per photo."""

        VERSION = tfds.core.Version("1.0.0")
        seed = 0
        sizes = {"train": 24, "test": 8}

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict({
                    "image": tfds.features.Image(shape=(None, None, 3),
                                                 encoding_format="jpeg"),
                    "label": tfds.features.ClassLabel(names=list(PHOTOS)),
                }),
                supervised_keys=("image", "label"))

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in self.sizes}

        def _generate_examples(self, split):
            rng = np.random.default_rng([self.seed, len(split)])
            for i in range(self.sizes[split]):
                label = i % len(PHOTOS)
                size = (int(rng.integers(24, 48)), int(rng.integers(24, 48)))
                yield f"{split}{i}", {"image": np.asarray(crop(PHOTOS[label], rng, size)),
                                      "label": label}

    class NotClassification(tfds.core.GeneratorBasedBuilder):
        """Vectors without labels: not an image classification set."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict({"x": tfds.features.Tensor(
                    shape=(3,), dtype=np.float32)}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i in range(4):
                yield i, {"x": np.full(3, i, np.float32)}

    return PhotoClasses, NotClassification


PhotoClasses, NotClassification = _photo_builder_class()


def prepare_not_classification(data_dir):
    import tensorflow_datasets as tfds

    builder = NotClassification(data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return builder
