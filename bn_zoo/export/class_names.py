"""Class names in every export: where they come from, and how each format holds them.

An exported classifier returns class indices; its class names say what they
are. Every export carries one name per output column, in output order:

- SavedModel: the signatures return `class_names` (string `[batch, k]`,
  aligned with `classes` and `scores`), looked up in a table read from the
  asset `assets/labels.txt` (`tf.saved_model.Asset`).
- ONNX: `metadata_props` entry `METADATA_KEY` ("class_names"), a JSON array
  of strings (`onnx.load(path).metadata_props`, or ONNX Runtime's
  `onnxruntime.InferenceSession(path).get_modelmeta()
  .custom_metadata_map["class_names"]`).
- LiteRT: the flatbuffer's `Model.metadata` entry named `METADATA_KEY`,
  whose buffer holds the same JSON array, UTF-8 (any flatbuffer reader of
  the TFLite schema reads it: `ai_edge_litert.schema_py_generated`). The
  TFLite Support metadata (`TFLITE_METADATA`, with `labels.txt` as an
  associated file) needs the `tflite-support` package, whose last release
  pins protobuf 3.20 (TensorFlow 2.16+ needs 4 or later), so it is not
  written.
- ONNX and LiteRT: `labels.txt` beside the file as well.

`labels.txt` holds one name per line, in output order, UTF-8, each line
ending in a newline (the format of TFLite's label files and of
`keras.utils.image_dataset_from_directory`'s sorted folder names).

Where the names come from (`bn_zoo.export.exporter`): `class_names=` (the
command's `--class_names_file`), else a training run's recorded names
(`recorded_class_names`), else the label set of the registered weights'
data config (`bn_zoo.models.catalogue.data_config`) when its width matches
the model's outputs, else the indices as strings, "0".."N-1".
"""

import json
import os

from absl import logging

from bn_zoo import runs
from bn_zoo.runs import labels
from bn_zoo.runs.labels import LABELS_FILE, labels_text  # noqa: F401 - re-exported

METADATA_KEY = "class_names"


def index_names(num_classes):
    """("0", "1", ..., "N-1"): the names of classes that have none."""
    return tuple(str(i) for i in range(num_classes))


def check_class_names(class_names, num_classes, model_name="model", origin=None):
    """Validates `class_names` for a model with `num_classes` outputs
    (`origin`, e.g. the file they were read from, for the message).

    Returns:
        The names, a tuple of `num_classes` strings.

    Raises:
        TypeError: not a sequence of strings (a single string included).
        ValueError: a count that differs from `num_classes`, an empty name,
            or a name holding a line break (labels.txt is one per line).
    """
    if isinstance(class_names, (str, bytes)) or not hasattr(class_names, "__iter__"):
        raise TypeError(
            "`class_names` must be a sequence of strings, one per output column "
            f"(or the path of a labels file through --class_names_file). Received: "
            f"{class_names!r:.80}")
    names = tuple(class_names)
    wrong = [n for n in names if not isinstance(n, str)]
    if wrong:
        raise TypeError(f"`class_names` must all be strings. Received: {wrong[0]!r} "
                        f"({type(wrong[0]).__name__}).")
    if len(names) != num_classes:
        source = f" from {origin}" if origin else ""
        raise ValueError(
            f"{len(names)} class names for model '{model_name}', which has {num_classes} "
            f"outputs: give exactly one name per output column, in output order. "
            f"Received: {len(names)} names{source} ({_preview(names)}).")
    labels.check_names(names)  # No empty name, none holding a line break.
    return names


def _preview(names, count=3):
    shown = ", ".join(repr(n) for n in names[:count])
    return shown + (", ..." if len(names) > count else "")


def read_labels_file(path):
    """The class names in a labels file: one per line, UTF-8; a final line
    break is optional, blank lines at the end are ignored.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not UTF-8 text, no name, or a blank line between names.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Class names file '{path}' does not exist; pass a text file with one "
            "class name per line, in output order.")
    return labels.read_labels(path)


def write_labels_file(path, names):
    """Writes labels.txt at `path` (inside an export's temporary directory)."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(labels_text(names))


def metadata_value(names):
    """The metadata value of the ONNX and LiteRT files: a JSON array of the
    names (non-ASCII characters kept as UTF-8)."""
    return json.dumps(list(names), ensure_ascii=False)


def recorded_class_names(workdir, config=None):
    """The class names a training run recorded, and where: `(names,
    origin)`, or `(None, None)`.

    Read from the run directory (`bn_zoo.runs.read_class_names`:
    `WORKDIR/labels.txt`, one name per line), else from config.json's
    `data.class_names` (a list; `config` is config.json as a dict).

    Raises:
        WorkdirError (a ValueError): a labels.txt that cannot be read.
    """
    names = runs.read_class_names(workdir)
    if names:
        return tuple(names), f"'{os.path.join(workdir, runs.LABELS_FILE)}'"
    names = ((config or {}).get("data") or {}).get("class_names")
    if names:
        return tuple(names), f"data.class_names of {os.path.join(workdir, runs.CONFIG_FILE)}"
    return None, None


def registered_class_names(data_config, num_classes):
    """The names of `data_config`'s label set for a model with `num_classes`
    outputs, or None (no data config, no label set, or another width: a
    new head, whose classes the label set does not describe)."""
    if data_config is None or getattr(data_config, "label_set", None) is None:
        return None
    try:
        return tuple(data_config.class_names(num_classes))
    except ValueError:
        logging.info("Label set %r does not describe %d outputs; classes are named by index.",
                     data_config.label_set, num_classes)
        return None


def resolve(num_classes, model_name="model", explicit=None, recorded=None, registered=None,
            recorded_origin=None):
    """The class names an export carries, and where they came from.

    Args:
        num_classes: The model's outputs.
        model_name: For the messages.
        explicit: `class_names=` (checked: a wrong count is refused).
        recorded: A training run's names (checked: a wrong count is refused),
            read from `recorded_origin`.
        registered: The registered label set's names for this width (or None).

    Returns:
        `(names, source)`, source one of "given", "recorded", "registered",
        "indices".
    """
    if explicit is not None:
        return check_class_names(explicit, num_classes, model_name), "given"
    if recorded is not None:
        return (check_class_names(recorded, num_classes, model_name, recorded_origin),
                "recorded")
    if registered is not None:
        return check_class_names(registered, num_classes, model_name), "registered"
    return index_names(num_classes), "indices"
