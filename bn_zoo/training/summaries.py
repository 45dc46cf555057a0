"""TensorBoard scalars written with TensorFlow alone.

`tf.summary.scalar` lives in the `tensorboard` package, which bn_zoo does not
depend on. `tf.summary.write` (TensorFlow core) with the scalars plugin's
metadata writes the same event records, which TensorBoard shows as scalars.

An event file is a sequence of TFRecords, appended to as the run goes: a
process killed, or a disk filled, while it writes one leaves a torn record
at the end of the file. `read_events` reads the records before it; a resumed
run rewrites the file without it (`plan_drop_after`), and `Writer` cuts it
off at once when a write fails, reporting the failure as an OSError that
names the file.
"""

import glob
import os
import re

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from bn_zoo.training import write_failures

_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)


def scalar(name, value, step):
    """Writes one float32 scalar to the default summary writer."""
    return tf.summary.write(
        name, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA
    )


def read_scalars(path):
    """{tag: [(step, value), ...]} of the scalars in one event file (for tests
    and scripts), up to a torn end (`read_events`)."""
    from tensorflow.core.util import event_pb2

    scalars = {}
    for record in read_events(path)[0]:
        event = event_pb2.Event.FromString(record)
        for value in event.summary.value:
            tensor = tf.make_ndarray(value.tensor)
            scalars.setdefault(value.tag, []).append((event.step, float(tensor)))
    return scalars


def read_events(path):
    """(records, torn) of the event file `path`: its records (bytes) up to the
    first one that cannot be read (cut short, or failing its checksum), and
    the number of bytes from there to the end of the file (0 if none)."""
    records = []
    try:
        for record in tf.data.TFRecordDataset(path):
            records.append(record.numpy())
    except tf.errors.DataLossError:
        pass
    readable = sum(_RECORD_OVERHEAD + len(record) for record in records)
    return records, os.path.getsize(path) - readable


# A TFRecord is its length (8 bytes) and that length's CRC (4), the data,
# and the data's CRC (4).
_RECORD_OVERHEAD = 16


def event_files(directory):
    """The event files under `directory` (none if it is absent), sorted."""
    found = []
    for root, _, names in os.walk(directory):
        found.extend(os.path.join(root, n) for n in names if ".tfevents." in n)
    return sorted(found)


class Rewrite:
    """An event file to rewrite (`plan_drop_after`): `path`, the `records`
    to keep, and what goes: `dropped` summaries after the step, `torn`
    bytes of a torn end."""

    def __init__(self, path, records, dropped, torn):
        self.path, self.records, self.dropped, self.torn = path, records, dropped, torn

    def describe(self):
        """A line for the log, or None if only later steps are dropped."""
        if not self.torn:
            return None
        return (f"{self.path} ends in {self.torn} byte(s) that are not a whole event "
                "record (a run killed, or a disk filled, while writing it): rewriting it "
                f"with its {len(self.records)} readable record(s).")

    def apply(self):
        """Rewrites the file atomically with the records kept."""
        from bn_zoo.runs import files

        root = os.path.dirname(self.path)
        tmp = os.path.join(root, f".events-{os.getpid()}.tmp")  # Not "tfevents".
        try:
            with tf.io.TFRecordWriter(tmp) as writer:
                for record in self.records:
                    writer.write(record)
            os.chmod(tmp, files.plain_write_mode(self.path))
            os.replace(tmp, self.path)
        except (OSError, tf.errors.OpError) as error:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise write_failures.os_error(error, self.path) from error


def plan_drop_after(directory, step, rewritten=()):
    """The rewrites that remove the summaries after `step`, those at `step`
    whose tag starts with one of `rewritten`, and any torn end, from the
    event files under `directory` (reading only: `Rewrite.apply` writes). A
    run resumed from the checkpoint at `step` writes those again; without
    this TensorBoard would show those points twice."""
    from tensorflow.core.util import event_pb2

    def kept_event(record):
        event = event_pb2.Event.FromString(record)
        if not event.HasField("summary") or event.step < step:
            return True
        return event.step == step and not any(
            value.tag.startswith(tuple(rewritten)) for value in event.summary.value)

    plan = []
    for path in event_files(directory):
        records, torn = read_events(path)
        kept = [r for r in records if kept_event(r)]
        if len(kept) != len(records) or torn:
            plan.append(Rewrite(path, kept, len(records) - len(kept), torn))
    return plan


def drop_after(directory, step):
    """Removes the summaries after `step`, and any torn end, from the event
    files under `directory`, each file rewritten atomically."""
    for rewrite in plan_drop_after(directory, step):
        rewrite.apply()


def cut_torn_end(path):
    """Truncates the event file `path` in place to its readable records (no
    temporary copy: it works on a full disk). Returns the bytes cut."""
    try:
        _, torn = read_events(path)
        if torn:
            os.truncate(path, os.path.getsize(path) - torn)
        return torn
    except (OSError, tf.errors.OpError):
        return 0


class Writer:
    """The run's summary writer: one event file under `directory` (None: a
    worker that writes none).

    A write, flush or close that fails (a full disk) closes the writer, cuts
    the torn record it left off the file (`cut_torn_end`) and raises the
    OSError of `write_failures.os_error`, which names the file.
    """

    def __init__(self, directory):
        self.directory = directory
        self.path = None
        if directory is None:
            self._writer = tf.summary.create_noop_writer()
            return
        before = set(event_files(directory))
        try:
            self._writer = tf.summary.create_file_writer(directory)
        except tf.errors.OpError as error:  # It writes the file's first record.
            self._writer = None
            new = sorted(set(event_files(directory)) - before)
            self.path = new[-1] if new else None
            raise self._failed(error) from error
        new = sorted(set(event_files(directory)) - before)
        self.path = new[-1] if new else directory

    def scalars(self, values, step):
        """Writes {tag: value} (floats, None skipped) at `step`."""
        try:
            with self._writer.as_default():
                for tag, value in values.items():
                    if value is not None:
                        scalar(tag, value, step)
        except tf.errors.OpError as error:
            raise self._failed(error) from error

    def close(self):
        """Flushes and closes the file (quietly once a write has failed)."""
        if self._writer is None:
            return
        try:
            self._writer.close()
        except tf.errors.OpError as error:
            raise self._failed(error) from error
        finally:
            self._writer = None

    def close_quietly(self):
        """`close`, ignoring a failure (while another error is on its way up)."""
        try:
            self.close()
        except OSError:
            pass

    def _failed(self, error):
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except tf.errors.OpError:
                pass
        path = self.path
        named = re.search(r"(\S*\.tfevents\.[^\s;]*)", str(error))
        if named and glob.glob(named.group(1)):
            path = named.group(1)
        if path and os.path.isfile(path):
            cut_torn_end(path)
        return write_failures.os_error(error, path or self.directory)
