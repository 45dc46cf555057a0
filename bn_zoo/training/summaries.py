"""TensorBoard scalars written with TensorFlow alone.

`tf.summary.scalar` lives in the `tensorboard` package, which bn_zoo does not
depend on. `tf.summary.write` (TensorFlow core) with the scalars plugin's
metadata writes the same event records, which TensorBoard shows as scalars.
"""

import os

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

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
    and scripts)."""
    from tensorflow.core.util import event_pb2

    scalars = {}
    for record in tf.data.TFRecordDataset(path):
        event = event_pb2.Event.FromString(record.numpy())
        for value in event.summary.value:
            tensor = tf.make_ndarray(value.tensor)
            scalars.setdefault(value.tag, []).append((event.step, float(tensor)))
    return scalars


def drop_after(directory, step):
    """Removes the summaries after `step` from the event files under
    `directory`, each file rewritten atomically.

    A run resumed from the checkpoint at `step` writes the later steps again;
    without this TensorBoard would show those points twice.
    """
    from tensorflow.core.util import event_pb2

    from bn_zoo.training import workdir as workdir_lib

    if not os.path.isdir(directory):
        return
    for root, _, names in os.walk(directory):
        for name in names:
            if ".tfevents." not in name:
                continue
            path = os.path.join(root, name)
            records = [r.numpy() for r in tf.data.TFRecordDataset(path)]
            kept = [r for r in records
                    if not (event := event_pb2.Event.FromString(r)).HasField("summary")
                    or event.step <= step]
            if len(kept) == len(records):
                continue
            tmp = os.path.join(root, f".events-{os.getpid()}.tmp")  # Not "tfevents".
            with tf.io.TFRecordWriter(tmp) as writer:
                for record in kept:
                    writer.write(record)
            os.chmod(tmp, workdir_lib.plain_write_mode(path))
            os.replace(tmp, path)
