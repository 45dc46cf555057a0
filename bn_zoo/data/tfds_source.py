"""Any TensorFlow Datasets image classification set (`config.data.name =
"tfds"`, `config.data.dataset = "cifar10"`, `"tf_flowers"`, `"mnist"`, ...).

The builder must be prepared under `data_dir` (or `$TFDS_DATA_DIR`, else
`~/tensorflow_datasets`); nothing is downloaded. It must have one `Image`
feature and one `ClassLabel` feature (its `supervised_keys`, or the only
ones; `image_key` / `label_key` choose among several): the class names are
the `ClassLabel`'s names, the images are decoded from their stored bytes
(`bn_zoo.data.images`) and cut to the model's input as the model's weights
say, as `image_folder` does (`bn_zoo.data.image_source`, which also splits
batches among replicas and augments).

The order is a pure function of `(seed, step)`: epoch e reads the split in
the order TFDS stored it (TFDS shuffles examples when it prepares a data
set), in windows of `shuffle_window` examples, each window permuted with
`stateless_shuffle` seeded by (seed, e, window); global batch i of the epoch
is examples i·B … (i+1)·B − 1 of that stream (the last N mod B of each epoch
are left out). A run resumed at step s therefore reads exactly the batches
an uninterrupted run reads from step s on. Resuming reads (without decoding)
the records of the current epoch up to step s once. Every input pipeline
reads the whole split and keeps its share of each global batch, so the
batches do not depend on the number of workers; for ImageNet-sized data
read by many workers use `imagenet` (sharded by file) or image folders.

A damaged file of the prepared set (random bytes, a copy cut short) stops
the pipeline where it is met, in TensorFlow's words, which name no file;
`record_files()` lists the files the source reads, so the trainer's
`named_data_errors(source)` names the damaged one and how to prepare the
set again.
"""

import difflib
import os

import ml_collections
import tensorflow as tf
from ml_collections.config_dict import placeholder

from bn_zoo.data import errors, record_files
from bn_zoo.data.ordering import epoch_seed, epochs, window_shuffle
from bn_zoo.data.image_source import (
    AUGMENTATION_DEFAULTS,
    AUGMENTATION_DOCS,
    ImageSource,
    check_augmentation,
)
from bn_zoo.data.tfrecords import DataError, DataNotFoundError

NAME = "tfds"
DEFAULT_SHUFFLE_WINDOW = 10_000
_WINDOW_SALT = 2


def _where(data_dir):
    return data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"


def load_builder(dataset, data_dir=None):
    """The prepared TFDS builder `dataset` ("name" or "name:version").

    Raises:
        DataError: no such TFDS data set.
        DataNotFoundError: it is not prepared under `data_dir`.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(dataset, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        name = dataset.partition(":")[0]
        close = difflib.get_close_matches(name, tfds.list_builders(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise DataError(
            f"TensorFlow Datasets has no data set config.data.dataset={dataset!r}.{hint} "
            "`tfds.list_builders()` lists them.") from None
    if not builder.is_prepared():
        raise DataNotFoundError(
            f"The TFDS data set {dataset!r} is not prepared under {_where(data_dir)!r} "
            f"(TFDS looked for {builder.data_dir}), and bn_zoo never downloads it. Point "
            "at a prepared copy with config.data.data_dir (or TFDS_DATA_DIR), or prepare "
            f"it on a machine with internet access: `python -c \"import tensorflow_datasets "
            f"as tfds; tfds.builder('{dataset}', data_dir='DIR').download_and_prepare()\"`, "
            "then copy DIR here.")
    return builder


def classification_keys(builder, image_key=None, label_key=None):
    """`(image_key, label_key)`: the builder's Image and ClassLabel features.

    Raises:
        DataError: the builder is not an image classification set (or has
            several candidates and the keys do not choose).
    """
    import tensorflow_datasets as tfds

    features = builder.info.features
    described = ", ".join(f"{k}: {type(v).__name__}" for k, v in features.items())
    name = builder.info.name
    kinds = {"image": (tfds.features.Image, image_key), "label": (tfds.features.ClassLabel,
                                                                  label_key)}
    supervised = builder.info.supervised_keys
    chosen = {}
    for role, (kind, given) in kinds.items():
        if given is not None:
            if given not in features or not isinstance(features[given], kind):
                raise DataError(
                    f"TFDS {name!r} has no {kind.__name__} feature {given!r} "
                    f"(config.data.{role}_key); its features: {described}.")
            chosen[role] = given
            continue
        candidates = [k for k, v in features.items() if isinstance(v, kind)]
        preferred = None
        if isinstance(supervised, tuple) and len(supervised) == 2:
            preferred = supervised[0 if role == "image" else 1]
        if preferred in candidates:
            chosen[role] = preferred
        elif len(candidates) == 1:
            chosen[role] = candidates[0]
        elif not candidates:
            raise DataError(
                f"TFDS {name!r} is not an image classification data set: it has no "
                f"top-level {kind.__name__} feature (its features: {described}). Use a "
                "builder with an Image and a ClassLabel feature.")
        else:
            raise DataError(
                f"TFDS {name!r} has several {kind.__name__} features "
                f"({', '.join(candidates)}): choose one with config.data.{role}_key.")
    image = features[chosen["image"]]
    channels = image.shape[-1] if image.shape else None
    if channels not in (None, 1, 3, 4):
        raise DataError(f"TFDS {name!r}'s {chosen['image']!r} images have {channels} channels; "
                        "an image classifier reads 1 or 3.")
    return chosen["image"], chosen["label"]


class TFDSInput(ImageSource):
    """A TFDS image classification set as a data source of the trainer (see
    the module docstring).

    Args:
        data: The resolved `config.data`.
        preprocess: Maps float32 batches of [0, 255] pixels to the model's input.
        model_input: A `bn_zoo.data.sources.ModelInput`.

    Attributes:
        class_names: The `ClassLabel`'s names.
        num_classes: Their number.

    Raises:
        DataError, DataNotFoundError: an unknown or unprepared data set, one
            that is not image classification, an unknown split, an image
            that does not decode or a damaged file (the first example of each
            split is checked; one met later is named by
            `bn_zoo.data.errors.named_data_errors(source)`).
    """

    FIELD_DOCS = {
        "name": "Data source: tfds (a TensorFlow Datasets image classification set).",
        "dataset": "TFDS builder name, e.g. cifar10, tf_flowers, mnist (or name:version).",
        "data_dir": (
            "TFDS data directory holding the prepared set (None: $TFDS_DATA_DIR, else "
            "~/tensorflow_datasets). Never downloaded. --data_dir overrides it."),
        "train_split": "TFDS split to train on; slices such as train[:90%] work.",
        "eval_split": "TFDS split to evaluate on, e.g. test or train[90%:].",
        "image_key": "The Image feature (None: the supervised key, or the only one).",
        "label_key": "The ClassLabel feature (None: the supervised key, or the only one).",
        "shuffle_window": (
            "Examples permuted together in each epoch (in the stored order, seeded by "
            "seed, epoch and window); 1 reads the stored order."),
        **AUGMENTATION_DOCS,
    }

    @staticmethod
    def default_config():
        return ml_collections.ConfigDict({
            "name": NAME,
            "dataset": placeholder(str),
            "data_dir": placeholder(str),
            "train_split": "train",
            "eval_split": "test",
            "image_key": placeholder(str),
            "label_key": placeholder(str),
            "shuffle_window": DEFAULT_SHUFFLE_WINDOW,
            **AUGMENTATION_DEFAULTS,
        })

    @staticmethod
    def check_config(data):
        if not isinstance(data["dataset"], str) or not data["dataset"]:
            raise ValueError("config.data.dataset is not set: name a TFDS image "
                             "classification builder, e.g. --config.data.dataset=cifar10.")
        for field in ("train_split", "eval_split"):
            if not isinstance(data[field], str) or not data[field]:
                raise ValueError(f"config.data.{field} must be a TFDS split name; "
                                 f"got {data[field]!r}.")
        for field in ("data_dir", "image_key", "label_key"):
            if data[field] is not None and not isinstance(data[field], str):
                raise ValueError(f"config.data.{field} must be a string or None; "
                                 f"got {data[field]!r}.")
        window = data["shuffle_window"]
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"config.data.shuffle_window must be an integer >= 1; got {window!r}.")
        check_augmentation(data)

    def __init__(self, data, preprocess=None, model_input=None):
        super().__init__(data, preprocess, model_input)
        data_dir = data.data_dir
        if data_dir is not None:
            data_dir = os.path.abspath(os.path.expanduser(data_dir))
        self._builder = load_builder(data.dataset, data_dir)
        self._dataset = data.dataset
        self._image_key, self._label_key = classification_keys(
            self._builder, data.image_key, data.label_key)
        self.class_names = [str(n) for n in self._builder.info.features[self._label_key].names]
        self.num_classes = len(self.class_names)
        self._splits = {"train": data.train_split, "eval": data.eval_split}
        self._counts = {role: self._count(split) for role, split in self._splits.items()}
        self._window = data.shuffle_window
        for split in dict.fromkeys(self._splits.values()):
            self._check_first(split)

    @property
    def num_train_examples(self):
        return self._counts["train"]

    @property
    def num_eval_examples(self):
        return self._counts["eval"]

    def _count(self, split):
        try:
            count = self._builder.info.splits[split].num_examples
        except (ValueError, KeyError) as error:
            names = ", ".join(self._builder.info.splits)
            raise DataError(
                f"TFDS {self._dataset!r} has no split {split!r} ({error}). Its splits: "
                f"{names}; slices such as 'train[:90%]' work.") from None
        if count < 1:
            raise DataError(f"TFDS {self._dataset!r} split {split!r} has no examples.")
        return count

    def _examples(self, split):
        """The split in its stored order, `{source, label, where}`, undecoded."""
        import tensorflow_datasets as tfds

        read_config = tfds.ReadConfig(add_tfds_id=True, try_autocache=False)
        examples = self._builder.as_dataset(
            split=split, shuffle_files=False, read_config=read_config,
            decoders={self._image_key: tfds.decode.SkipDecoding()})
        image_key, label_key = self._image_key, self._label_key
        return examples.map(lambda e: {"source": e[image_key],
                                       "label": tf.cast(e[label_key], tf.int32),
                                       "where": e["tfds_id"]})

    def _describe(self, where):
        return tf.strings.join([f"TFDS {self._dataset} example ", where])

    def _read(self, source):
        return source

    def _too_few(self, count, global_batch_size):
        return DataError(
            f"TFDS {self._dataset!r} split {self._splits['train']!r} has {count} examples, "
            f"fewer than one global batch of {global_batch_size}. Use a larger "
            "config.data.train_split or a smaller config.global_batch_size.")

    def record_files(self):
        """The TFRecord files of both splits, for naming a damaged one
        (`bn_zoo.data.errors.named_data_errors`)."""
        return record_files.tfds_record_files(
            self._builder, list(dict.fromkeys(self._splits.values())),
            record_files.tfds_fix(self._dataset.partition(":")[0]))

    def _check_first(self, split):
        elements = self._examples(split).take(1)
        with errors.named_data_errors(self):
            for _ in self._decoded(elements, self._transform(False), ()):
                pass

    def _train_batches(self, global_batch_size, seed, start_step):
        base = self._examples(self._splits["train"])
        steps = self.steps_per_epoch(global_batch_size)
        size, window = global_batch_size, self._window

        def epoch(e):
            examples = window_shuffle(base, window, epoch_seed(seed, _WINDOW_SALT, e))
            batches = examples.take(steps * size).batch(size, drop_remainder=True)
            numbers = tf.data.Dataset.range(e * steps, (e + 1) * steps)
            return tf.data.Dataset.zip(numbers, batches).map(
                lambda step, batch: {**batch, "step": step})

        first_epoch, offset = divmod(start_step, steps)
        return epochs(epoch, first_epoch).skip(offset)

    def _eval_batches(self, global_batch_size):
        n = self.num_eval_examples
        padded = -(-n // global_batch_size) * global_batch_size
        real = self._examples(self._splits["eval"]).map(
            lambda e: {**e, "weight": tf.constant(1.0)})
        padding = tf.data.Dataset.from_tensors({
            "source": tf.constant(b""), "label": tf.constant(0, tf.int32),
            "where": tf.constant(b"padding"), "weight": tf.constant(0.0)}).repeat(padded - n)
        return real.concatenate(padding).batch(global_batch_size)
