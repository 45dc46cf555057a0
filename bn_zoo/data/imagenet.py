"""ImageNet input pipelines for `tf.distribute` (the paper's Section 4.2).

One call of the function returned by `dataset_fn` builds the input pipeline of
one worker, so a trainer runs

    strategy.distribute_datasets_from_function(
        imagenet.dataset_fn(config, global_batch_size, training=True))

Each pipeline reads its own shard of the files (or, with fewer files than
pipelines, its own shard of the records), interleaves the files, shuffles the
records in a large buffer (the paper's "shuffle training examples more
thoroughly", Section 4.2.1), repeats for training, decodes and preprocesses in
parallel (`bn_zoo.data.preprocessing`), batches at the per-replica size and
prefetches. Elements are `(images, labels)`: images `[b, s, s, 3]` in [-1, 1]
of `config.dtype`, labels `[b]` int32 class indices in [0, num_classes).

The data comes from TensorFlow Datasets (`source="tfds"`, the `imagenet2012`
builder prepared from the manual download) or from TFRecord shards in the
standard layout (`source="tfrecord"`, see `bn_zoo.data.tfrecords`). Call
`validate(config)` before writing any training state: it fails fast, with the
file and the fix, on missing, corrupt or mislabelled data.
"""

import dataclasses
import random

import ml_collections
import tensorflow as tf
from absl import logging

from bn_zoo.data import preprocessing, tfrecords
from bn_zoo.data.tfrecords import DataError, DataNotFoundError

SOURCES = ("tfds", "tfrecord")
# Section 4.2.1's "within-shard shuffling": records shuffled in a buffer this
# large (per pipeline; ~1.1 GB of JPEG bytes on ImageNet). A buffer of 1 reads
# each shard's records in order, as the paper's baseline did.
THOROUGH_SHUFFLE_BUFFER_SIZE = 10_000
_READ_BUFFER_BYTES = 8 << 20


def default_config():
    """The input config and its defaults (every field may be overridden)."""
    return ml_collections.ConfigDict({
        "source": "tfds",  # "tfds" or "tfrecord".
        # tfds: TFDS data_dir (None: $TFDS_DATA_DIR, else ~/tensorflow_datasets).
        # tfrecord: the directory holding the shards (required).
        "data_dir": None,
        "tfds_name": "imagenet2012",
        "train_split": "train",
        "eval_split": "validation",
        "num_classes": 1000,
        # Subtracted from stored labels. None: 1 for "tfrecord" (the standard
        # layout stores 1..1000, 0 = background), 0 for "tfds" (0..999).
        "label_offset": None,
        "image_size": 224,
        "distortion_strength": 1.0,  # 0: no photometric distortion; 1: Inception's.
        "area_range": (0.08, 1.0),
        "aspect_ratio_range": (3 / 4, 4 / 3),
        "central_fraction": 0.875,
        "dtype": "float32",  # Or "bfloat16" / "float16" for mixed precision.
        "shuffle_buffer_size": THOROUGH_SHUFFLE_BUFFER_SIZE,  # 1: shards in order.
        "cycle_length": 16,  # Files read concurrently per pipeline.
        "eval_drop_remainder": False,
        "seed": None,  # int: reproducible order and augmentation.
    })


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    """What one input pipeline reads: `files`, then every `num_record_shards`-th
    record from `record_shard_index` (1 and 0 when sharding by file)."""

    files: tuple
    num_record_shards: int = 1
    record_shard_index: int = 0
    reason: str = ""


def plan_shards(files, input_context=None):
    """Splits `files` among input pipelines: by file when there are at least as
    many files as pipelines, otherwise every pipeline reads all the files and
    keeps its share of the records."""
    files = tuple(files)
    if input_context is None or input_context.num_input_pipelines == 1:
        return ShardPlan(files)
    count, index = input_context.num_input_pipelines, input_context.input_pipeline_id
    if len(files) >= count:
        return ShardPlan(files[index::count])
    return ShardPlan(files, count, index, reason=(
        f"{len(files)} file(s) for {count} input pipelines: every pipeline reads all "
        "files and keeps 1/{0} of the records. Write at least {0} shards to shard by "
        "file, which reads each record once.".format(count)))


def per_replica_batch_size(global_batch_size, input_context=None):
    """The batch size of one replica; raises if the global batch does not divide."""
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int) \
            or global_batch_size <= 0:
        raise ValueError(
            f"`global_batch_size` must be a positive integer; received {global_batch_size!r}.")
    replicas = input_context.num_replicas_in_sync if input_context else 1
    if global_batch_size % replicas:
        raise ValueError(
            f"The global batch size {global_batch_size} does not divide among "
            f"{replicas} replicas. Use a multiple of {replicas}, e.g. "
            f"{max(replicas, global_batch_size // replicas * replicas)}.")
    return global_batch_size // replicas


def settings(config):
    """The validated input settings: `default_config()` updated with `config`."""
    values = default_config().to_dict()
    given = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
    unknown = sorted(set(given) - set(values))
    if unknown:
        raise ValueError(
            f"Unknown input config field(s) {unknown}; the fields are {sorted(values)}.")
    values.update(given)
    s = ml_collections.FrozenConfigDict(values)
    if s.source not in SOURCES:
        raise ValueError(f"`source` must be one of {SOURCES}; received {s.source!r}.")
    for name in ("num_classes", "image_size", "shuffle_buffer_size", "cycle_length"):
        value = s[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer; received {value!r}.")
    for name in ("label_offset", "seed"):
        if s[name] is not None and (isinstance(s[name], bool) or not isinstance(s[name], int)):
            raise ValueError(f"`{name}` must be None or an integer; received {s[name]!r}.")
    preprocessing.check_options(
        s.image_size, s.distortion_strength, tuple(s.area_range),
        tuple(s.aspect_ratio_range), s.central_fraction, s.dtype)
    return s


def label_offset(s):
    """The offset subtracted from stored labels (the config's, or the source's)."""
    if s.label_offset is not None:
        return s.label_offset
    return tfrecords.STANDARD_LABEL_OFFSET if s.source == "tfrecord" else 0


def _read_tfrecord_file(path):
    records = tf.data.TFRecordDataset(path, buffer_size=_READ_BUFFER_BYTES)

    def describe(index, record):
        image, label = tfrecords.parse_example(record)
        where = tf.strings.join([path, ", record ", tf.strings.as_string(index)])
        return image, label, where

    return records.enumerate().map(describe)


def _tfrecord_examples(s, split, training, input_context, seed, deterministic):
    plan = plan_shards(tfrecords.list_shards(s.data_dir, split), input_context)
    if plan.reason:
        logging.warning("Record-level sharding of %s: %s", split, plan.reason)
    files = tf.data.Dataset.from_tensor_slices(list(plan.files))
    file_level = plan.num_record_shards == 1
    if training and file_level:
        files = files.shuffle(len(plan.files), seed=seed).repeat()
    examples = files.interleave(
        _read_tfrecord_file,
        cycle_length=min(s.cycle_length, len(plan.files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        # Record-level shards are disjoint only if all pipelines interleave alike.
        deterministic=deterministic or not file_level)
    if not file_level:
        examples = examples.shard(plan.num_record_shards, plan.record_shard_index)
        if training:
            examples = examples.repeat()
    return examples


def _load_tfds(s, split, training, input_context, seed):
    import tensorflow_datasets as tfds

    read_config = tfds.ReadConfig(
        input_context=input_context, interleave_cycle_length=s.cycle_length,
        shuffle_seed=seed, add_tfds_id=True, try_autocache=False)
    try:
        return tfds.load(
            s.tfds_name, split=split, data_dir=s.data_dir, download=False,
            shuffle_files=training, decoders={"image": tfds.decode.SkipDecoding()},
            read_config=read_config)
    except AssertionError as error:  # tfds' "could not find data".
        where = s.data_dir or "$TFDS_DATA_DIR or ~/tensorflow_datasets"
        raise DataNotFoundError(
            f"TensorFlow Datasets has no prepared `{s.tfds_name}` in {where}. Prepare "
            "it once from the manual download: put ILSVRC2012_img_train.tar and "
            "ILSVRC2012_img_val.tar in a directory MANUAL and run `python -c \"import "
            f"tensorflow_datasets as tfds; tfds.builder('{s.tfds_name}', data_dir='DATA')"
            ".download_and_prepare(download_config=tfds.download.DownloadConfig("
            "manual_dir='MANUAL'))\"`, then set `data_dir=DATA` (or TFDS_DATA_DIR). "
            "Or use `source='tfrecord'` with TFRecord shards in the standard layout.") from error


def _tfds_examples(s, split, training, input_context, seed):
    try:
        examples = _load_tfds(s, split, training, input_context, seed)
        shards = None
    except ValueError as error:
        if input_context is None or "Cannot shard" not in str(error):
            raise
        logging.warning("Record-level sharding of %s: %s", split, error)
        examples = _load_tfds(s, split, training, None, seed)
        shards = (input_context.num_input_pipelines, input_context.input_pipeline_id)

    def describe(example):
        where = example["tfds_id"]
        if "file_name" in example:
            where = tf.strings.join([where, " (", example["file_name"], ")"])
        return example["image"], example["label"], where

    examples = examples.map(describe)
    if shards:
        examples = examples.shard(*shards)
    return examples.repeat() if training else examples


def _checked(image, stored_label, where, num_classes, offset):
    """Fails loudly, naming the record, on a non-JPEG image or a bad label."""
    label = stored_label - offset
    checks = [
        tf.debugging.Assert(tf.io.is_jpeg(image), [
            "The image is not JPEG data (image/encoded must hold a JPEG file; "
            "re-encode it or drop the record):", where]),
        tf.debugging.Assert(tf.logical_and(label >= 0, label < num_classes), [
            "Label out of range at", where, ": stored label", stored_label,
            "minus label_offset", offset, "is outside [0, num_classes) with "
            "num_classes", num_classes, ". Set label_offset (1 for labels 1..1000 "
            "as in the standard layout, 0 for 0..999) and num_classes to match "
            "the data (-1 means the record has no image/class/label)."]),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(image), tf.cast(label, tf.int32)


def build_dataset(config, global_batch_size, training, split=None, input_context=None):
    """The `tf.data.Dataset` of one input pipeline (see the module docstring).

    Args:
        config: Input config (`default_config()` fields; others are errors).
        global_batch_size: Batch size summed over all replicas.
        training: True: shuffled, repeated, randomly augmented batches with
            `drop_remainder=True`. False: one deterministic pass, centre crops.
        split: Split to read; default `config.train_split` or `eval_split`.
        input_context: The `tf.distribute.InputContext` of this pipeline, or
            None for a single pipeline.
    """
    s = settings(config)
    split = split or (s.train_split if training else s.eval_split)
    batch_size = per_replica_batch_size(global_batch_size, input_context)
    pipeline = input_context.input_pipeline_id if input_context else 0
    seed = None if s.seed is None else s.seed + pipeline
    deterministic = not training or s.seed is not None
    if s.source == "tfrecord":
        examples = _tfrecord_examples(s, split, training, input_context, seed, deterministic)
    else:
        examples = _tfds_examples(s, split, training, input_context, seed)
    offset = label_offset(s)

    if training:
        examples = examples.shuffle(s.shuffle_buffer_size, seed=seed)
        # Per-image seeds [pipeline seed, position]: reproducible augmentation
        # whatever the parallelism, new at every epoch.
        element_seed = random.SystemRandom().randrange(2**31) if seed is None else seed

        def prepare_train(position, example):
            image, label = _checked(*example, s.num_classes, offset)
            image = preprocessing.preprocess_for_train(
                image, tf.stack([tf.constant(element_seed, tf.int64), position]),
                s.image_size, s.distortion_strength, tuple(s.area_range),
                tuple(s.aspect_ratio_range), s.dtype)
            return image, label

        examples = examples.enumerate().map(
            prepare_train,
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    else:
        def prepare_eval(*example):
            image, label = _checked(*example, s.num_classes, offset)
            return preprocessing.preprocess_for_eval(
                image, s.image_size, s.central_fraction, s.dtype), label

        examples = examples.map(
            prepare_eval, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    drop_remainder = training or s.eval_drop_remainder
    dataset = examples.batch(batch_size, drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = deterministic
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def dataset_fn(config, global_batch_size, training, split=None):
    """`fn(input_context)` for `strategy.distribute_datasets_from_function`.

    The config and batch size are checked now, so mistakes surface before the
    strategy calls `fn` on every worker.
    """
    settings(config)
    per_replica_batch_size(global_batch_size)

    def fn(input_context=None):
        return build_dataset(config, global_batch_size, training, split, input_context)

    return fn


def eval_examples(config, split=None):
    """One deterministic pass over `split`'s records, checked but not decoded.

    For evaluators that decode and crop the images themselves
    (`bn_zoo.evaluation`). Elements are `(image_bytes, label)`: a scalar
    string of JPEG bytes and an int32 class index in [0, num_classes) (the
    stored label minus `label_offset`). A record that is not JPEG or whose
    label is out of range stops the iteration with an
    `InvalidArgumentError` naming the record.

    Args:
        config: Input config (`default_config()` fields; only the source,
            data_dir, tfds_name, eval_split, num_classes, label_offset and
            cycle_length fields matter).
        split: Split to read; default `config.eval_split`.
    """
    s = settings(config)
    split = split or s.eval_split
    if s.source == "tfrecord":
        examples = _tfrecord_examples(s, split, False, None, None, deterministic=True)
    else:
        examples = _tfds_examples(s, split, False, None, None)
    offset = label_offset(s)
    return examples.map(lambda *example: _checked(*example, s.num_classes, offset),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _first_line(error):
    return str(getattr(error, "message", error)).strip().splitlines()[0][:200]


def _check_record(image, stored_label, where, s, offset):
    image, stored_label, where = image.numpy(), int(stored_label), where.numpy().decode()
    if not tf.io.is_jpeg(image):
        raise DataError(
            f"{where}: the image is not JPEG data ({len(image)} bytes). image/encoded "
            "must hold a JPEG file: re-encode the image as JPEG, or drop the record.")
    try:
        tf.io.decode_jpeg(image, channels=3)
    except tf.errors.InvalidArgumentError as error:
        raise DataError(
            f"{where}: the JPEG image does not decode ({_first_line(error)}). It is "
            "truncated or damaged: re-encode it from its source, or drop the "
            "record.") from None
    label = stored_label - offset
    if not 0 <= label < s.num_classes:
        raise DataError(
            f"{where}: stored label {stored_label} minus label_offset {offset} is "
            f"{label}, outside [0, {s.num_classes}). Set `label_offset` (1 for labels "
            "1..1000 as in the standard layout, 0 for 0..999) and `num_classes` to "
            "match the data (-1 means the record has no image/class/label).")


def _validate_records(examples, num_records, s, offset, name):
    examples = examples if num_records is None else examples.take(num_records)
    iterator, count = iter(examples), 0
    while True:
        try:
            image, stored_label, where = next(iterator)
        except StopIteration:
            break
        except tf.errors.DataLossError as error:
            raise DataError(
                f"{name}: record {count} is corrupt ({_first_line(error)}). The file is "
                "truncated or not a TFRecord file: copy or convert it again.") from None
        except tf.errors.InvalidArgumentError as error:
            raise DataError(
                f"{name}: record {count} is not a tf.train.Example with image/encoded "
                f"and image/class/label ({_first_line(error)}). Convert the data to "
                "the standard layout.") from None
        _check_record(image, stored_label, where, s, offset)
        count += 1
    if count == 0:
        raise DataError(f"{name} holds no records: re-create it, or remove it and "
                        "renumber the shards.")


def validate(config, splits=None, num_files=1, num_records=1):
    """Checks, cheaply, that the data is there and readable; raises `DataError`.

    Run it before creating any training state. For each split it lists the
    shards (or finds the prepared TFDS data set), then reads, parses and
    decodes the first `num_records` records of the first `num_files` files and
    checks their labels. `num_files=None, num_records=None` checks every record
    of every file, which names the culprit when the running pipeline stops on
    a corrupt record or an undecodable image.

    Args:
        config: Input config (see `default_config`).
        splits: Splits to check; default the training and evaluation splits.
        num_files: Shards checked per split (tfrecord source); None for all.
        num_records: Records checked per shard (per split for tfds); None for all.

    Raises:
        DataNotFoundError: missing data directory, shards or prepared data set.
        DataError: inconsistent shards, a corrupt file, a record that is not an
            Example, an image that is not a decodable JPEG, a label out of range.
    """
    s = settings(config)
    offset = label_offset(s)
    for split in splits or (s.train_split, s.eval_split):
        if s.source == "tfds":
            examples = _tfds_examples(s, split, False, None, None)
            _validate_records(examples, num_records, s, offset, f"{s.tfds_name} {split}")
            continue
        files = tfrecords.list_shards(s.data_dir, split)
        for path in files if num_files is None else files[:num_files]:
            _validate_records(_read_tfrecord_file(path), num_records, s, offset, path)
