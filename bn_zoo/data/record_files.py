"""Which TFRecord file is corrupt, when a pipeline that reads many stops.

A TFRecord file that is damaged (random bytes, a copy cut short, a record
overwritten) stops any `tf.data` pipeline that reaches the damage with a
`DataLossError` such as "corrupted record at 99740" or "truncated record
at 49868": a byte offset, but no file name. `find_corrupt` reads a list of
files once (in parallel, in `tf.data`) and names the first that does not
read to its end:

    error = record_files.find_corrupt(paths, record_files.TFRECORD_FIX)
    if error is not None:
        raise error      # DataError("/data/train-00007-of-01024: record 412 is
                         #   corrupt (truncated record at byte 5271931). ...")

A file reads cleanly when its records, each with its 16 bytes of framing
(length, length checksum, data checksum), add up to its size. Reading stops
at the first record that fails its checks, so its index is the number of
records read before it.

Data sources tell `bn_zoo.data.errors.named_data_errors` which files they
read, and what to do about a damaged one, with a `record_files()` method
that returns a `RecordFiles` (`tfds_record_files` for a prepared TFDS data
set).
"""

import dataclasses
import re

import tensorflow as tf

from bn_zoo.data.tfrecords import DataError

# Bytes around each record of an uncompressed TFRecord file: its length (8),
# the length's checksum (4) and the data's checksum (4).
_FRAMING_BYTES = 16
_BATCH = 4096
# TensorFlow's record reader's messages: "corrupted record at 99740",
# "truncated record at 49868' failed with Read less bytes than requested".
_AT_OFFSET = re.compile(r"(corrupted|truncated) record at (\d+)")
_OP_PREFIX = re.compile(r"^\{\{function_node [^}]*\}\}\s*")
_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\].*$", re.DOTALL)

TFRECORD_FIX = ("The file is truncated or not a TFRecord file: copy or convert it "
                "again.")


def tfds_fix(name, manual=False):
    """What to do about a damaged file of the prepared TFDS data set `name`."""
    if manual:
        how = ("from the manual download (`tfds.builder('{0}', data_dir='DIR')"
               ".download_and_prepare(download_config=tfds.download.DownloadConfig("
               "manual_dir='MANUAL'))`)").format(name)
    else:
        how = ("on a machine with internet access (`tfds build {0} --data_dir=DIR`, or "
               "`python -c \"import tensorflow_datasets as tfds; tfds.builder('{0}', "
               "data_dir='DIR').download_and_prepare()\"`)").format(name)
    return (f"The prepared TFDS data set is damaged: copy the file again from a good "
            f"copy, or prepare {name!r} again {how} and copy DIR here.")


@dataclasses.dataclass(frozen=True)
class RecordFiles:
    """The TFRecord files a data source reads, and what to do when one is
    damaged (the end of the `DataError`'s message)."""

    paths: tuple
    fix: str = TFRECORD_FIX


def is_record_error(error):
    """Whether `error` is TensorFlow's record reader meeting a damaged record
    (a `DataLossError` naming a byte offset), as opposed to, say, a damaged
    checkpoint."""
    return isinstance(error, tf.errors.DataLossError) and bool(
        _AT_OFFSET.search(_message(error)))


def _message(error):
    return str(getattr(error, "message", None) or error)


def reason(error):
    """TensorFlow's reason in short: "corrupted record at byte 0"; else the
    first line of its message without the op's name."""
    text = _message(error)
    found = _AT_OFFSET.search(text)
    if found:
        return f"{found.group(1)} record at byte {found.group(2)}"
    text = _OP_SUFFIX.sub("", _OP_PREFIX.sub("", text.strip()))
    return (text.splitlines() or [type(error).__name__])[0][:200]


def _readable_extent(path):
    """(records, bytes) that read cleanly from the start of the file `path`."""
    batches = tf.data.TFRecordDataset(path).ignore_errors().batch(_BATCH)

    def add(total, batch):
        count = tf.shape(batch, out_type=tf.int64)[0]
        size = tf.reduce_sum(tf.cast(tf.strings.length(batch), tf.int64))
        return total[0] + count, total[1] + size + _FRAMING_BYTES * count

    zero = tf.constant(0, tf.int64)
    return batches.reduce((zero, zero), add)


def _extents(paths):
    dataset = tf.data.Dataset.from_tensor_slices(list(paths)).map(
        _readable_extent, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return [(int(n), int(b)) for n, b in dataset.as_numpy_iterator()]


def _why(path, records, readable, size):
    """Why `path` stops after `records` records: the reader's own error."""
    try:
        tf.data.TFRecordDataset(path).skip(records).take(1).reduce(
            tf.constant(0, tf.int64), lambda count, _: count + 1)
    except tf.errors.DataLossError as error:
        return reason(error)
    return f"{size - readable} bytes after the last whole record"


def find_corrupt(paths, fix=TFRECORD_FIX, at=None):
    """The `DataError` naming a file of `paths` (TFRecord files, uncompressed)
    that does not read to its end, or None when all do (or are missing, which
    other checks report).

    The message is `"<path>: record N is corrupt (<reason>). <fix>"`, N
    counted from 0. Reads every file once (the whole list: one pass over the
    data set's bytes). Of several damaged files, the first whose damaged
    record starts at byte `at` (the offset of the reader's error), else the
    first.
    """
    paths = [str(p) for p in dict.fromkeys(paths)]
    sizes = {}
    for path in paths:
        try:
            sizes[path] = tf.io.gfile.stat(path).length
        except tf.errors.OpError:
            continue
    present = [p for p in paths if p in sizes]
    if not present:
        return None
    damaged = [(path, records, readable)
               for path, (records, readable) in zip(present, _extents(present))
               if readable != sizes[path]]
    if not damaged:
        return None
    path, records, readable = next(
        (d for d in damaged if d[2] == at), damaged[0])
    why = _why(path, records, readable, sizes[path])
    return DataError(f"{path}: record {records} is corrupt ({why}). {fix}")


def tfds_record_files(builder, splits, fix=None):
    """The `RecordFiles` of `splits` (names or slices) of a prepared TFDS
    `builder`: the files TFDS reads for them (none when it stores another
    format than TFRecord, or for a split it does not know)."""
    import tensorflow_datasets as tfds

    fix = fix or tfds_fix(builder.info.name)
    if builder.info.file_format not in (None, tfds.core.FileFormat.TFRECORD):
        return RecordFiles((), fix)
    paths = []
    for split in splits:
        try:
            paths += [str(p) for p in builder.info.splits[split].filepaths]
        except (KeyError, ValueError, TypeError):
            continue
    return RecordFiles(tuple(dict.fromkeys(paths)), fix)


def located(error, files):
    """The `DataError` naming the damaged file behind the record reader's
    `error`, among `files` (a `RecordFiles`, or a list of them), or None."""
    if not is_record_error(error):
        return None
    at = int(_AT_OFFSET.search(_message(error)).group(2))
    groups = [files] if isinstance(files, RecordFiles) else list(files or ())
    for group in groups:
        found = find_corrupt(group.paths, group.fix, at)
        if found is not None:
            return found
    return None
