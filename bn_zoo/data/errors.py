"""Data errors raised inside a running `tf.data` pipeline, named.

A file that turns out unreadable after the preflight checks (a corrupt
image, a record that fails a check) stops the pipeline in the middle of a
run, where TensorFlow can only raise an `OpError`. The pipelines put their
message between two markers (`in_graph_message`, through
`tf.debugging.Assert`), and `data_error_from` / `named_data_errors` turn such
an `OpError` back into the one-line `DataError` that names the file.

A damaged TFRecord file stops the pipeline with TensorFlow's own
`DataLossError`, which names no file: given the data source (or its
`RecordFiles`), `named_data_errors` reads the files the source reads
(`bn_zoo.data.record_files`) and names the one that is damaged.

    with named_data_errors():
        for batch in dataset: ...      # DataError("photos/cat/3.jpg: ...")
    with named_data_errors(source):   # A source with record_files().
        for batch in dataset: ...      # DataError("/data/train-00007-of-01024:
                                       #   record 12 is corrupt (...). ...")
"""

import contextlib
import re

import tensorflow as tf

from bn_zoo.data import record_files
from bn_zoo.data.tfrecords import DataError

_BEGIN = "<<bn_zoo.DataError>>"
_END = "<</bn_zoo.DataError>>"
_FOUND = re.compile(re.escape(_BEGIN) + r"(.*?)" + re.escape(_END), re.DOTALL)


def in_graph_message(*parts):
    """A scalar string tensor: the message of a `DataError` (`parts`, strings
    or string tensors, joined), between the markers `data_error_from` finds."""
    return tf.strings.join([_BEGIN, *parts, _END])


def assert_named(condition, *parts):
    """`tf.debugging.Assert(condition, ...)` whose error `data_error_from`
    turns into `DataError(''.join(parts))`."""
    return tf.debugging.Assert(condition, [in_graph_message(*parts)])


def data_error_from(error):
    """The `DataError` an `OpError` of a bn_zoo pipeline carries, or None
    (an `OpError` of anything else)."""
    text = getattr(error, "message", None) or str(error)
    found = _FOUND.search(text)
    if found is None:
        return None
    return DataError(" ".join(found.group(1).split()))


def _record_files(source):
    if source is None or isinstance(source, (record_files.RecordFiles, list, tuple)):
        return source
    method = getattr(source, "record_files", source)
    try:
        return method() if callable(method) else None
    except Exception:  # noqa: BLE001 - no list of files: the original error stands.
        return None


def named_data_error(error, source=None):
    """The one-line `DataError` behind `OpError` `error`: the message a
    pipeline put in it (`data_error_from`), or, for TensorFlow's record
    reader stopping on a damaged record, the file of `source` that holds it
    (see `named_data_errors`); None if neither."""
    named = data_error_from(error)
    if named is None and record_files.is_record_error(error):
        named = record_files.located(error, _record_files(source))
    return named


@contextlib.contextmanager
def named_data_errors(source=None):
    """Re-raises an `OpError` that carries a pipeline's data error as that
    `DataError` (one line, naming the file); other errors pass unchanged.

    Args:
        source: Where a damaged TFRecord file is looked for when TensorFlow's
            record reader stops (a `DataLossError`): a data source with a
            `record_files()` method, a `RecordFiles` or a list of them, or a
            function returning one (called only then). None, or a source
            without that method: the error passes unchanged.
    """
    try:
        yield
    except tf.errors.OpError as error:
        named = named_data_error(error, source)
        if named is None:
            raise
        raise named from None
