"""ImageNet input pipelines for `tf.distribute` (the paper's Section 4.2).

One call of the function returned by `dataset_fn` builds the input pipeline of
one worker, so a trainer runs

    strategy.distribute_datasets_from_function(
        imagenet.dataset_fn(config, global_batch_size, training=True))

Each pipeline reads its own shard of the files (or, with fewer files than
pipelines, its own shard of the records), epoch after epoch for training,
interleaves the files, permutes windows of consecutive records (the paper's
"shuffle training examples more thoroughly", Section 4.2.1), decodes and
preprocesses in parallel (`bn_zoo.data.preprocessing`), batches at the
per-replica size and prefetches. With a seed the training order is a pure
function of (seed, pipeline, step), so a pipeline built at `start_step`
resumes exactly (`build_dataset`). Elements are `(images, labels)`: images `[b, s, s, 3]` in [-1, 1]
of `config.dtype`, labels `[b]` int32 class indices in [0, num_classes).

The data comes from TensorFlow Datasets (`source="tfds"`, the `imagenet2012`
builder prepared from the manual download) or from TFRecord shards in the
standard layout (`source="tfrecord"`, see `bn_zoo.data.tfrecords`). Call
`validate(config)` before writing any training state: it fails fast, with the
file and the fix, on missing, corrupt or mislabelled data.

`ImageNetInput` is this pipeline as a data source of the trainer
(`config.data.name = "imagenet"`, `bn_zoo.training.inputs`): every field of
`default_config()` is a field of the trainer's `config.data`
(`pipeline_config` turns one into the other).
"""

import dataclasses
import random

import ml_collections
import tensorflow as tf
from absl import logging
from ml_collections.config_dict import placeholder

from bn_zoo.data import errors, ordering, preprocessing, record_files, tfrecords
from bn_zoo.data.tfrecords import DataError, DataNotFoundError

SOURCES = ("tfds", "tfrecord")
# Section 4.2.1's "within-shard shuffling": windows of this many consecutive
# records permuted (per pipeline; ~1.1 GB of JPEG bytes on ImageNet, two
# windows held). A window of 1 reads each shard's records in order, as the
# paper's baseline did.
THOROUGH_SHUFFLE_BUFFER_SIZE = 10_000
_READ_BUFFER_BYTES = 8 << 20
# Streams of (seed, epoch) seeds (bn_zoo.data.ordering): file order, windows.
_FILE_SALT, _WINDOW_SALT = 3, 4


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
    """The records of `split` once (evaluation and checks), this pipeline's share."""
    del training, seed  # Training reads through _train_stream.
    plan = plan_shards(tfrecords.list_shards(s.data_dir, split), input_context)
    if plan.reason:
        logging.warning("Record-level sharding of %s: %s", split, plan.reason)
    files = tf.data.Dataset.from_tensor_slices(list(plan.files))
    file_level = plan.num_record_shards == 1
    examples = files.interleave(
        _read_tfrecord_file,
        cycle_length=min(s.cycle_length, len(plan.files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        # Record-level shards are disjoint only if all pipelines interleave alike.
        deterministic=deterministic or not file_level)
    if not file_level:
        examples = examples.shard(plan.num_record_shards, plan.record_shard_index)
    return examples


def _count_records(files):
    """Records in each of `files` (read, not parsed), in parallel.

    Raises:
        DataError: a file is damaged (named).
    """
    counts = tf.data.Dataset.from_tensor_slices(list(files)).map(
        lambda path: tf.data.TFRecordDataset(path, buffer_size=_READ_BUFFER_BYTES).reduce(
            tf.constant(0, tf.int64), lambda count, _: count + 1),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    with errors.named_data_errors(record_files.RecordFiles(tuple(files))):
        return [int(c) for c in counts.as_numpy_iterator()]


def _tfrecord_epochs(s, split, input_context, order_seed, deterministic):
    """`(make_epoch, epoch_length)` of this pipeline's training records: epoch
    e reads its files in the order `stateless_shuffle` draws from
    (order_seed, e), interleaved; `epoch_length()` counts its records."""
    plan = plan_shards(tfrecords.list_shards(s.data_dir, split), input_context)
    if plan.reason:
        logging.warning("Record-level sharding of %s: %s", split, plan.reason)
    files = list(plan.files)
    file_level = plan.num_record_shards == 1

    def make_epoch(e):
        names = tf.constant(files)
        if len(files) > 1:
            order = tf.random.experimental.stateless_shuffle(
                tf.range(len(files)), seed=ordering.epoch_seed(order_seed, _FILE_SALT, e))
            names = tf.gather(names, order)
        examples = tf.data.Dataset.from_tensor_slices(names).interleave(
            _read_tfrecord_file, cycle_length=min(s.cycle_length, len(files)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic or not file_level)
        if not file_level:
            examples = examples.shard(plan.num_record_shards, plan.record_shard_index)
        return examples

    def epoch_length():
        total = sum(_count_records(files))
        if file_level:
            return total
        shards, index = plan.num_record_shards, plan.record_shard_index
        return (total - index + shards - 1) // shards

    return make_epoch, epoch_length


def _tfds_epochs(s, split, input_context):
    """`(make_epoch, epoch_length)` for the tfds source: every epoch reads
    this pipeline's share of the split in its stored order (TFDS shuffled
    the examples when it prepared them)."""
    examples = _tfds_examples(s, split, False, input_context, None)

    def epoch_length():
        known = int(examples.cardinality())
        if known >= 0:
            return known
        return int(examples.reduce(tf.constant(0, tf.int64), lambda count, *_: count + 1))

    return (lambda e: examples), epoch_length


def _train_stream(s, split, input_context, seed, start_element, deterministic):
    """This pipeline's training records from its element `start_element` on,
    enumerated from there: a pure function of (seed, element), see
    `build_dataset`."""
    pipeline = input_context.input_pipeline_id if input_context else 0
    if s.source == "tfrecord":
        # Record-level shards need one file order for all pipelines: the base seed's.
        make_epoch, epoch_length = _tfrecord_epochs(
            s, split, input_context, seed - pipeline, deterministic)
    else:
        make_epoch, epoch_length = _tfds_epochs(s, split, input_context)
    first_epoch, offset = 0, 0
    if start_element:
        length = epoch_length()
        if length < 1:
            raise DataError(f"The `{split}` split has no records for input pipeline "
                            f"{pipeline}: nothing to train on.")
        first_epoch, offset = divmod(start_element, length)

    def shuffled_epoch(e):
        return ordering.window_shuffle(
            make_epoch(e), s.shuffle_buffer_size, ordering.epoch_seed(seed, _WINDOW_SALT, e))

    stream = ordering.epochs(shuffled_epoch, first_epoch).skip(offset)
    # Read on across an epoch's end while its last records decode.
    return stream.enumerate(start=start_element).prefetch(tf.data.AUTOTUNE)


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
    return examples


def _checked(image, stored_label, where, num_classes, offset):
    """Fails loudly, naming the record, on a non-JPEG image or a bad label
    (an `OpError` that `bn_zoo.data.errors.data_error_from` turns into the
    `DataError`)."""
    label = stored_label - offset
    checks = [
        errors.assert_named(
            tf.io.is_jpeg(image), "The image is not JPEG data (image/encoded must hold a "
            "JPEG file; re-encode it or drop the record): ", where, "."),
        errors.assert_named(
            tf.logical_and(label >= 0, label < num_classes), "Label out of range at ", where,
            ": stored label ",
            tf.strings.as_string(stored_label), " minus label_offset ", str(offset),
            f" is outside [0, {num_classes}). Set label_offset (1 for labels 1..1000 as in "
            "the standard layout, 0 for 0..999) and num_classes to match the data (-1 "
            "means the record has no image/class/label)."),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(image), tf.cast(label, tf.int32)


def build_dataset(config, global_batch_size, training, split=None, input_context=None,
                  start_step=0):
    """The `tf.data.Dataset` of one input pipeline (see the module docstring).

    Training order: with a `seed`, a pure function of (seed, pipeline,
    step). Each pipeline reads epochs of its records (its shard of the
    files, or of the records with fewer files than pipelines); epoch e
    reads the files in an order drawn from (seed, e) (tfrecord; tfds reads
    them in their stored order), interleaved, and permutes each run of
    `shuffle_buffer_size` consecutive records with a stateless shuffle
    seeded by (seed, e, run) (`bn_zoo.data.ordering.window_shuffle`); image
    k of the pipeline's stream is augmented with the seed (seed, k). A
    pipeline built with `start_step` s starts at its record s · (global
    batch / pipelines): it counts its records (one read of its files, not
    decoded), skips whole epochs and reads the rest of the current one,
    and yields exactly the batches an uninterrupted pipeline yields from
    step s on.

    Args:
        config: Input config (`default_config()` fields; others are errors).
        global_batch_size: Batch size summed over all replicas.
        training: True: shuffled, repeated, randomly augmented batches with
            `drop_remainder=True`. False: one deterministic pass, centre crops.
        split: Split to read; default `config.train_split` or `eval_split`.
        input_context: The `tf.distribute.InputContext` of this pipeline, or
            None for a single pipeline.
        start_step: Training: the global step of the first batch.
    """
    s = settings(config)
    split = split or (s.train_split if training else s.eval_split)
    batch_size = per_replica_batch_size(global_batch_size, input_context)
    pipeline = input_context.input_pipeline_id if input_context else 0
    pipelines = input_context.num_input_pipelines if input_context else 1
    if isinstance(start_step, bool) or int(start_step) != start_step or start_step < 0:
        raise ValueError(f"`start_step` must be an integer >= 0; received {start_step!r}.")
    deterministic = not training or s.seed is not None
    offset = label_offset(s)

    if training:
        # Without a seed the order is new in every process (and not resumable).
        base_seed = random.SystemRandom().randrange(2**31) if s.seed is None else s.seed
        seed = base_seed + pipeline
        start_element = int(start_step) * (global_batch_size // pipelines)
        examples = _train_stream(s, split, input_context, seed, start_element, deterministic)

        def prepare_train(position, example):
            image, label = _checked(*example, s.num_classes, offset)
            image = preprocessing.preprocess_for_train(
                image, tf.stack([tf.constant(seed, tf.int64), position]),
                s.image_size, s.distortion_strength, tuple(s.area_range),
                tuple(s.aspect_ratio_range), s.dtype)
            return image, label

        examples = examples.map(
            prepare_train,
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    else:
        if s.source == "tfrecord":
            examples = _tfrecord_examples(s, split, False, input_context, None, deterministic)
        else:
            examples = _tfds_examples(s, split, False, input_context, None)

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


def dataset_fn(config, global_batch_size, training, split=None, start_step=0):
    """`fn(input_context)` for `strategy.distribute_datasets_from_function`.

    The config and batch size are checked now, so mistakes surface before the
    strategy calls `fn` on every worker.
    """
    settings(config)
    per_replica_batch_size(global_batch_size)

    def fn(input_context=None):
        return build_dataset(config, global_batch_size, training, split, input_context,
                             start_step)

    return fn


def eval_examples(config, split=None):
    """One deterministic pass over `split`'s records, checked but not decoded.

    For evaluators that decode and crop the images themselves
    (`bn_zoo.evaluation`). Elements are `(image_bytes, label)`: a scalar
    string of JPEG bytes and an int32 class index in [0, num_classes) (the
    stored label minus `label_offset`). A record that is not JPEG or whose
    label is out of range stops the iteration with an
    `InvalidArgumentError` naming the record (`bn_zoo.data.errors.
    named_data_errors` turns it into a `DataError`).

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


def _validate_records(examples, num_records, s, offset, name, files=None):
    """Reads, parses and checks the first `num_records` of `examples`
    (`name`: a file, or a TFDS split; `files()`: the `RecordFiles` that
    hold its damaged one, if any)."""
    examples = examples if num_records is None else examples.take(num_records)
    iterator, count = iter(examples), 0
    while True:
        try:
            image, stored_label, where = next(iterator)
        except StopIteration:
            break
        except tf.errors.DataLossError as error:
            named = record_files.located(error, files()) if files is not None else None
            if named is not None:
                raise named from None
            raise DataError(
                f"{name}: record {count} is corrupt ({record_files.reason(error)}). "
                f"{record_files.TFRECORD_FIX}") from None
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
            _validate_records(examples, num_records, s, offset, f"{s.tfds_name} {split}",
                              files=lambda: _tfds_record_files(s, [split]))
            continue
        files = tfrecords.list_shards(s.data_dir, split)
        for path in files if num_files is None else files[:num_files]:
            _validate_records(_read_tfrecord_file(path), num_records, s, offset, path)


def _tfds_record_files(s, splits):
    import tensorflow_datasets as tfds

    builder = tfds.builder(s.tfds_name, data_dir=s.data_dir)
    manual = bool(getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None))
    return record_files.tfds_record_files(
        builder, splits, record_files.tfds_fix(s.tfds_name.partition(":")[0], manual))


def split_record_files(config, splits=None):
    """The `RecordFiles` of `splits` (default: the training and evaluation
    splits): the shards (tfrecord) or the prepared TFDS files (tfds), for
    naming the damaged one when a running pipeline stops on it
    (`bn_zoo.data.errors.named_data_errors`, `record_files.located`).

    Raises:
        DataNotFoundError: the shards are missing.
    """
    s = settings(config)
    splits = list(dict.fromkeys(splits or (s.train_split, s.eval_split)))
    if s.source == "tfds":
        return _tfds_record_files(s, splits)
    paths = [p for split in splits for p in tfrecords.list_shards(s.data_dir, split)]
    return record_files.RecordFiles(tuple(paths))


# ------------------------------------------------- the trainer's data source
# Fields of the trainer's config.data that are not input-pipeline settings.
_TRAINER_FIELDS = ("name", "validate_num_files", "validate_num_records")

def pipeline_config(data):
    """The input config (`default_config()` fields) of the trainer's resolved
    `config.data` (a `ConfigDict` or dict, as config.json holds it)."""
    values = dict(data.to_dict() if hasattr(data, "to_dict") else data)
    for field in _TRAINER_FIELDS:
        values.pop(field, None)
    values["area_range"] = tuple(values["area_range"])
    values["aspect_ratio_range"] = tuple(values["aspect_ratio_range"])
    return values


class ImageNetInput:
    """ImageNet (TFDS or TFRecord shards) as a data source of the trainer:
    the input interface of `bn_zoo.training.inputs`, top-1 and top-5
    evaluation on the validation split.

    One pipeline per worker through `strategy.distribute_datasets_from_function`
    (see the module docstring). `distortion_strength` and `shuffle_buffer_size`
    left at None come from the model's recipe (the BN-x networks "reduce the
    photometric distortions", Section 4.2.1). The data is checked (`validate`)
    when the source is created, which the trainer does before it writes
    anything to the workdir: a missing or empty directory, a corrupt shard, an
    image that does not decode or a label out of range is one `DataError`
    naming the file and the fix. Damage past what the check reads (a shard
    cut short) stops the run where it is met; `record_files()` lets the
    trainer name that file too.

    The pipeline scales images to [-1, 1] itself, which is the registry's
    "inception" preprocessing mode, so the trainer's `preprocess` is not
    applied.

    Args:
        data: The resolved `config.data`.
        preprocess: Unused: the pipeline already scales to [-1, 1] (the
            "inception" mode of `bn_zoo.models.preprocess_input`).
    """

    FIELD_DOCS = {
        "name": ("Data source: mnist, mnist_inception, imagenet, image_folder, tfds, a "
                 "registered name or 'package.module:Class' (bn_zoo.training.inputs)."),
        "source": "tfds (imagenet2012 prepared by TensorFlow Datasets) or tfrecord (shards).",
        "data_dir": (
            "tfds: the TFDS data directory (None: $TFDS_DATA_DIR, else "
            "~/tensorflow_datasets). tfrecord: the shard directory (required). Never "
            "downloaded. --data_dir overrides it."),
        "tfds_name": "TFDS builder name.",
        "train_split": "Split to train on; tfds also accepts slices such as train[:10%].",
        "eval_split": "Split to evaluate on.",
        "num_classes": "Classes; a label outside [0, num_classes) after label_offset is an error.",
        "label_offset": (
            "Subtracted from stored labels. None: 1 for tfrecord (the standard layout "
            "stores 1..1000), 0 for tfds."),
        "image_size": "Output height and width of the crops.",
        "distortion_strength": (
            "Scale of the photometric distortions (0: none, 1: Inception's). None: the "
            "recipe's distortion_strength (smaller for BN-x, Section 4.2.1)."),
        "area_range": "Fraction of the image area the random training crop keeps.",
        "aspect_ratio_range": "Width/height range of the random training crop.",
        "central_fraction": "Fraction of each side the evaluation crop keeps.",
        "dtype": "Dtype of the images: float32, bfloat16 or float16.",
        "shuffle_buffer_size": (
            "Records per input pipeline permuted together, a window of consecutive "
            "records (1: each shard read in order). None: from the recipe's "
            "shuffle_thoroughly (Section 4.2.1): 10,000 if True, else 1."),
        "cycle_length": "Files one input pipeline reads at the same time (interleave).",
        "eval_drop_remainder": "Drop the last partial evaluation batch (set True on TPU).",
        "seed": ("Seed of the data order and augmentation (exact across a resume). None: "
                 "the trainer's config.seed."),
        "validate_num_files": (
            "Preflight check before training: how many shards of each split it reads "
            "(0: all)."),
        "validate_num_records": "Preflight check: how many records of each checked shard (0: all).",
    }

    @staticmethod
    def default_config():
        """The trainer's `config.data` fields for ImageNet, with defaults."""
        config = default_config().to_dict()
        config.update({
            "data_dir": placeholder(str),
            "label_offset": placeholder(int),
            "seed": placeholder(int),
            "distortion_strength": placeholder(float),
            "shuffle_buffer_size": placeholder(int),
        })
        return ml_collections.ConfigDict({
            "name": "imagenet",
            **config,
            "validate_num_files": 0,
            "validate_num_records": 1,
        })

    @staticmethod
    def check_config(data):
        """Raises ValueError naming the `config.data` field that is wrong
        (`bn_zoo.training.inputs.check_config` reports it as a ConfigError)."""
        for field in ("validate_num_files", "validate_num_records"):
            value = data[field]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"config.data.{field} must be an integer >= 0 (0: all); "
                                 f"got {value!r}.")
        if data["distortion_strength"] is None:
            raise ValueError("config.data.distortion_strength is not set; set it in [0, 1].")
        try:
            settings(pipeline_config(data))
        except ValueError as error:
            raise ValueError(f"config.data: {error}") from error

    def __init__(self, data, preprocess=None):
        del preprocess  # The pipeline scales to [-1, 1] itself.
        self._config = pipeline_config(data)
        self.num_classes = data.num_classes
        validate(
            self._config,
            num_files=data.validate_num_files or None,
            num_records=data.validate_num_records or None,
        )
        self.class_names = self._class_names()

    def record_files(self):
        """The record files of the training and evaluation splits
        (`split_record_files`): `named_data_errors(source)` names a damaged
        one that stops a running pipeline."""
        return split_record_files(self._config)

    def _class_names(self):
        """The tfds builder's label names (WordNet IDs for imagenet2012) when
        they match num_classes, else the class indices as strings (the
        trainer names ImageNet's 1000 classes from bn_zoo.models.labels)."""
        s = settings(self._config)
        if s.source == "tfds":
            import tensorflow_datasets as tfds

            try:
                label = tfds.builder(s.tfds_name, data_dir=s.data_dir).info.features["label"]
                names = [str(n) for n in label.names]
            except Exception:  # noqa: BLE001 - names are a nicety; indices otherwise.
                names = []
            if len(names) == s.num_classes:
                return names
        return [str(i) for i in range(s.num_classes)]

    def _with_seed(self, seed):
        config = dict(self._config)
        if config["seed"] is None:
            config["seed"] = seed
        return config

    def train_dataset_fn(self, global_batch_size, seed, start_step):
        """Endless augmented training batches from global step `start_step`
        on: the batches an uninterrupted run reads from that step
        (`build_dataset`; a resume first counts the pipeline's records)."""
        return dataset_fn(self._with_seed(seed), global_batch_size, training=True,
                          start_step=start_step)

    def eval_dataset_fn(self, global_batch_size):
        """The validation split once, central crops; the last batch may be
        partial (and a replica's share empty), which the weighted sums allow."""
        return dataset_fn(self._config, global_batch_size, training=False)

    def population_dataset(self, global_batch_size, seed):
        """Global training batches for Algorithm 2's population statistics."""
        return build_dataset(self._with_seed(seed), global_batch_size, training=True)

    def probe_examples(self, num_examples):
        """The first `num_examples` validation images, preprocessed.

        Raises:
            DataError: the validation split has fewer images.
        """
        dataset = build_dataset(self._config, num_examples, training=False)
        images = next(iter(dataset))[0]
        if images.shape[0] < num_examples:
            raise DataError(
                f"config.probe.num_examples={num_examples} is more than the "
                f"{images.shape[0]} validation images; use at most that many.")
        return tf.convert_to_tensor(images)
