"""A folder of images, one subfolder per class (`config.data.name =
"image_folder"`): the data of a fine-tuning run.

    photos/                      config.data.directory
        cat/  1.jpg 2.png ...    class 0 ("cat")
        dog/  a.jpg b/c.bmp ...  class 1 ("dog"; images in nested folders count)

The layout and formats are those of `keras.utils.image_dataset_from_directory`:
the classes are the subfolders in sorted order (their names are the class
names), the images are the files ending in `.bmp .gif .jpeg .jpg .png` (any
case; a GIF's first frame) anywhere below a class folder, decoded by content.
Unlike Keras, which silently skips other files, any other file below a class
folder is refused with its path (a stray file is usually a mistake the user
wants to hear about). Hidden files and folders (names starting with ".",
such as `.DS_Store` or macOS's `._photo.jpg`) are skipped; files directly in
`directory` (a README, a LICENSE) are not classes and are skipped too.

The evaluation examples are `validation_directory` (the same layout; its
classes must be among the training classes) or, without it, a held-out
`validation_split` of each class: the files of a class are ordered by the
SHA-256 of `"{validation_seed}:{path relative to the class folder}"` and
the first round(f · n) are held out. The split depends only on the file
names and the seed, not on `config.seed`, the file system's listing order
or the machine: the same files are held out in every run, and adding a file
to a class changes the held-out set by at most two files (the new one, and
one at the edge of the count).

The order is a pure function of `(seed, step)`, as `bn_zoo.data.mnist`'s:
epoch e visits the training files in the permutation
`stateless_shuffle(range(N), (seed, e))`, global batch i of the epoch is
`perm[i·B:(i+1)·B]` (the last N mod B files of each epoch's order are left
out), and augmentation is drawn per (seed, step, index) (see
`bn_zoo.data.image_source`). A run resumed at step s reads exactly the
batches an uninterrupted run reads from step s on, as long as the folder
holds the same files. `keras.utils.image_dataset_from_directory` is not used
for this reason: its shuffle buffer has no position to resume from.

Checks before anything is written (`DataError`, naming the folder or file):
a missing or empty directory, fewer than two classes, a class without
images, a file that is not an image (by extension, or by its first bytes,
read for every file), a validation class that is not a training class, a
split without training or validation images, fewer training images than one
global batch. `check_images="decode"` also decodes every image once at
start. A file that fails to decode during the run stops it with a
`DataError` naming the file.
"""

import hashlib
import os

import ml_collections
import numpy as np
import tensorflow as tf
from ml_collections.config_dict import placeholder

from bn_zoo.data import errors, images, ordering
from bn_zoo.data.image_source import (
    AUGMENTATION_DEFAULTS,
    AUGMENTATION_DOCS,
    ImageSource,
    check_augmentation,
    check_seed_field,
)
from bn_zoo.data.tfrecords import DataError, DataNotFoundError

NAME = "image_folder"
CHECK_IMAGES = ("headers", "decode")


def _hidden(name):
    return name.startswith(".")


def _class_files(class_dir):
    """Sorted relative paths ('/'-separated) of the images below `class_dir`."""
    found = []
    for root, dirs, files in os.walk(class_dir):
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        for name in files:
            if _hidden(name):
                continue
            path = os.path.join(root, name)
            if not images.has_image_extension(name):
                raise DataError(
                    f"{path} is not an image file: image_folder reads "
                    f"{' '.join(images.EXTENSIONS)} files (any case) below each class "
                    "folder. Move it out of the folder, or convert it to one of these.")
            found.append(os.path.relpath(path, class_dir).replace(os.sep, "/"))
    return sorted(found)


def _check_header(path):
    try:
        with open(path, "rb") as file:
            first = file.read(images.SIGNATURE_BYTES)
    except OSError as error:
        raise DataError(f"{path} cannot be read ({error.strerror}). Fix its permissions "
                        "or remove it.") from None
    if not first:
        raise DataError(f"{path} is empty (0 bytes): replace it with the image, or remove it.")
    if images.image_format(first) is None:
        raise DataError(
            f"{path} is not a JPEG, PNG, GIF or BMP image (its first bytes are "
            f"{first!r}), whatever its extension says. Re-save it in one of these "
            "formats, or remove it.")


def scan(directory, class_names=None, what="config.data.directory"):
    """The classes and images of a folder with one subfolder per class.

    Args:
        directory: The folder.
        class_names: None: the classes are `directory`'s subfolders. A
            list (the training classes): `directory`'s subfolders must be
            among them (a validation folder).
        what: How messages name `directory`.

    Returns:
        `(class_names, files)`: the sorted class names, and `files[c]` the
        sorted paths of class c's images relative to its folder.

    Raises:
        DataNotFoundError: `directory` does not exist.
        DataError: no class subfolders (or only one), a class without
            images, a file that is not an image, an unknown class.
    """
    if not os.path.isdir(directory):
        raise DataNotFoundError(
            f"{what}={directory!r} does not exist or is not a folder. Point it at a folder "
            "with one subfolder of images per class.")
    subfolders = sorted(name for name in os.listdir(directory)
                        if not _hidden(name) and os.path.isdir(os.path.join(directory, name)))
    if class_names is None:
        if len(subfolders) < 2:
            found = f"only {subfolders[0]!r}" if subfolders else "none"
            raise DataError(
                f"{what}={directory!r} holds {found} of the class subfolders a classifier "
                "needs (at least 2; one subfolder of images per class, named after the "
                "class).")
        class_names = subfolders
    else:
        unknown = [name for name in subfolders if name not in class_names]
        if unknown:
            raise DataError(
                f"{what}={directory!r} has class folder(s) {', '.join(map(repr, unknown))} "
                f"that the training folder does not have (its classes: "
                f"{', '.join(class_names)}). Rename or remove them.")
        if not subfolders:
            raise DataError(f"{what}={directory!r} holds no class subfolders.")
    files = {}
    for name in subfolders:
        class_dir = os.path.join(directory, name)
        found = _class_files(class_dir)
        if not found:
            raise DataError(
                f"{class_dir} holds no images (.bmp .gif .jpeg .jpg .png): add some, or "
                "remove the folder.")
        for relative in found:
            _check_header(os.path.join(class_dir, relative))
        files[class_names.index(name)] = found
    return list(class_names), files


def split(files, fraction, seed):
    """Holds out round(fraction · n) files of each class (by the SHA-256 of
    `"{seed}:{relative path}"`): `(train, validation)`, each {class: sorted
    relative paths}."""
    train, validation = {}, {}
    for label, names in files.items():
        ranked = sorted(names, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
        count = int(np.floor(fraction * len(names) + 0.5))
        validation[label] = sorted(ranked[:count])
        train[label] = sorted(ranked[count:])
    return train, validation


def _flatten(directory, class_names, files):
    paths, labels = [], []
    for label in sorted(files):
        for relative in files[label]:
            paths.append(os.path.join(directory, class_names[label], *relative.split("/")))
            labels.append(label)
    return paths, np.asarray(labels, np.int32)


class ImageFolderInput(ImageSource):
    """A folder of images as a data source of the trainer (see the module
    docstring).

    Args:
        data: The resolved `config.data`.
        preprocess: Maps float32 batches of [0, 255] pixels to the model's
            input (the trainer's `preprocess_input` of the model and weights).
        model_input: A `bn_zoo.data.sources.ModelInput`: the image shape and
            the crop of the model's weights.

    Attributes:
        class_names: The sorted class folder names.
        num_classes: Their number.
        train_files, eval_files: `(paths, labels)` of each split, in the
            canonical order (class, then relative path).

    Raises:
        DataNotFoundError, DataError: see the module docstring.
    """

    FIELD_DOCS = {
        "name": "Data source: image_folder (a folder with one subfolder of images per class).",
        "directory": (
            "The training folder: one subfolder per class (sorted names = class names), "
            "images .bmp .gif .jpeg .jpg .png below each; hidden files skipped, other "
            "files refused."),
        "validation_directory": (
            "The evaluation folder, same layout and classes. None: hold out "
            "validation_split of each class of directory."),
        "validation_split": (
            "Fraction of each class held out for evaluation when validation_directory is "
            "None (which files: a hash of their names and validation_seed, the same in every "
            "run). Not used when validation_directory is set."),
        "validation_seed": "Seed of which files validation_split holds out (not config.seed).",
        "check_images": (
            "Preflight check: headers (every file's first bytes; a file that fails to "
            "decode later stops the run naming it) or decode (decode every image once "
            "at start)."),
        **AUGMENTATION_DOCS,
    }

    @staticmethod
    def default_config():
        return ml_collections.ConfigDict({
            "name": NAME,
            "directory": placeholder(str),
            "validation_directory": placeholder(str),
            "validation_split": 0.2,
            "validation_seed": 0,
            "check_images": "headers",
            **AUGMENTATION_DEFAULTS,
        })

    @staticmethod
    def check_config(data):
        if not isinstance(data["directory"], str) or not data["directory"]:
            raise ValueError(
                "config.data.directory is not set: give the folder with one subfolder of "
                "images per class (--config.data.directory=DIR).")
        if data["validation_directory"] is not None and (
                not isinstance(data["validation_directory"], str)
                or not data["validation_directory"]):
            raise ValueError("config.data.validation_directory must be a folder or None; got "
                             f"{data['validation_directory']!r}.")
        fraction = data["validation_split"]
        if data["validation_directory"] is None and (
                isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                or not 0 < fraction < 1):
            raise ValueError(
                "config.data.validation_split must be a fraction in (0, 1), e.g. 0.2, or "
                "set config.data.validation_directory; got "
                f"validation_split={fraction!r}.")
        check_seed_field(data, "validation_seed")
        if data["check_images"] not in CHECK_IMAGES:
            raise ValueError(f"config.data.check_images must be one of {CHECK_IMAGES}; got "
                             f"{data['check_images']!r}.")
        check_augmentation(data)

    def __init__(self, data, preprocess=None, model_input=None):
        super().__init__(data, preprocess, model_input)
        self._directory = os.path.abspath(os.path.expanduser(data.directory))
        self.class_names, files = scan(self._directory)
        self.num_classes = len(self.class_names)
        if data.validation_directory:
            where = os.path.abspath(os.path.expanduser(data.validation_directory))
            _, eval_files = scan(where, self.class_names, "config.data.validation_directory")
            self._held_out = ""
        else:
            where = self._directory
            files, eval_files = split(files, data.validation_split, data.validation_seed)
            self._held_out = f" (validation_split={data.validation_split:g} held out the rest)"
            for label, names in files.items():
                if not names:
                    raise DataError(
                        f"{os.path.join(self._directory, self.class_names[label])}: "
                        f"validation_split={data.validation_split:g} holds out all its "
                        f"{len(eval_files[label])} image(s), leaving none to train on. Add "
                        "images, or lower validation_split.")
            if not any(eval_files.values()):
                raise DataError(
                    f"config.data.validation_split={data.validation_split:g} holds out no "
                    f"image of {self._directory!r} (round(fraction x images) is 0 for every "
                    "class). Raise it, or set config.data.validation_directory.")
        self.train_files = _flatten(self._directory, self.class_names, files)
        self.eval_files = _flatten(where, self.class_names, eval_files)
        if data.check_images == "decode":
            self._decode_all()

    @property
    def num_train_examples(self):
        return len(self.train_files[0])

    @property
    def num_eval_examples(self):
        return len(self.eval_files[0])

    def _too_few(self, count, global_batch_size):
        return DataError(
            f"config.data.directory={self._directory!r} has {count} training images"
            f"{self._held_out}, fewer than one global batch of {global_batch_size}. Add "
            "images, or use a smaller config.global_batch_size.")

    def _read(self, source):
        return tf.io.read_file(source)

    def _decode_all(self):
        """Decodes every image once; a DataError names the first that fails."""
        paths = self.train_files[0] + self.eval_files[0]
        elements = tf.data.Dataset.from_tensor_slices({
            "source": paths, "where": paths,
            "label": np.zeros(len(paths), np.int32)})
        decoded = self._decoded(elements, self._transform(False), ())
        with errors.named_data_errors():
            for _ in decoded.batch(256):
                pass

    def _train_batches(self, global_batch_size, seed, start_step):
        paths, labels = (tf.constant(a) for a in self.train_files)
        n = self.num_train_examples
        steps = self.steps_per_epoch(global_batch_size)

        def epoch(e):
            permutation = tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int32), seed=tf.stack([tf.constant(seed, tf.int64), e]))
            indices = tf.reshape(permutation[:steps * global_batch_size],
                                 [steps, global_batch_size])
            return tf.data.Dataset.from_tensor_slices(
                (e * steps + tf.range(steps, dtype=tf.int64), indices))

        first_epoch, offset = divmod(start_step, steps)
        batches = ordering.epochs(epoch, first_epoch)

        def examples(step, indices):
            chosen = tf.gather(paths, indices)
            return {"step": step, "source": chosen, "where": chosen,
                    "label": tf.gather(labels, indices)}

        return batches.skip(offset).map(examples)

    def _eval_batches(self, global_batch_size):
        paths, labels = self.eval_files
        n = len(paths)
        padded = -(-n // global_batch_size) * global_batch_size
        indices = np.minimum(np.arange(padded), n - 1)
        chosen = np.asarray(paths, dtype=object)[indices].astype(str)
        return tf.data.Dataset.from_tensor_slices({
            "source": chosen, "where": chosen, "label": labels[indices],
            "weight": (np.arange(padded) < n).astype(np.float32),
        }).batch(global_batch_size)
