"""Writing the ONNX and LiteRT files with Keras' own exporters.

Both start from `formats.serving_model` (the served network, with the
input check of `serving_default`, preprocessing, softmax and top-k) and call
`keras.Model.export`:

- ONNX: `format="onnx"`, which traces the model and converts the function
  with tf2onnx. Input `images`, outputs `probabilities`, `classes`, `scores`.
- LiteRT: `format="litert"`, which writes a SavedModel and converts it with
  `tf.lite.TFLiteConverter`; the file's one signature is `serving_default`
  with the same names. With `quantize="int8"`: post-training full-integer
  quantization (weights and activations int8, TFLite's
  `TFLITE_BUILTINS_INT8` op set), the activation ranges calibrated on a
  representative dataset of training images; the `images` input and the
  outputs stay float32, so clients call it exactly as the float32 file.

Both files then get the class names as metadata
(`bn_zoo.export.class_names`): ONNX `metadata_props["class_names"]`, and the
LiteRT flatbuffer's `metadata` entry "class_names", a JSON array each.
"""

import json

import numpy as np

from bn_zoo.export import class_names as class_names_lib
from bn_zoo.export import formats


def write_onnx(served, path, class_names=None):
    """Writes `served` (a `formats.serving_model`) as an ONNX file at `path`,
    with `class_names` (strings) as its metadata, if given."""
    served.export(path, format="onnx", input_signature=formats.input_signature(served),
                  verbose=False)
    if class_names is not None:
        add_onnx_metadata(path, {class_names_lib.METADATA_KEY:
                                 class_names_lib.metadata_value(class_names)})


def add_onnx_metadata(path, entries):
    """Sets `metadata_props` entries ({key: string}) of the ONNX file at
    `path`, replacing those of the same keys."""
    import onnx

    model = onnx.load(path)
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)


def read_onnx_metadata(path):
    """The `metadata_props` of the ONNX file at `path`, {key: value}."""
    import onnx

    return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}


def add_litert_metadata(path, entries):
    """Adds `metadata` entries ({name: bytes}) to the LiteRT file at `path`,
    replacing those of the same names: each a buffer of the flatbuffer
    named in `Model.metadata`, as the converter stores its own
    (`min_runtime_version`, `CONVERSION_METADATA`); the interpreter ignores
    them."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    with open(path, "rb") as f:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(f.read()))
    model.metadata = [m for m in (model.metadata or [])
                      if _name(m.name) not in entries]
    model.buffers = list(model.buffers or [])
    for name, data in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    data = flatbuffer_utils.convert_object_to_bytearray(model)
    with open(path, "wb") as f:
        f.write(data)


def read_litert_metadata(path):
    """The `metadata` entries of the LiteRT file at `path`, {name: bytes}."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        data = bytearray(f.read())
    model = schema.Model.GetRootAs(data, 0)
    entries = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        buffer = model.Buffers(entry.Buffer())
        entries[_name(entry.Name())] = bytes(buffer.DataAsNumpy()) if buffer.DataLength() else b""
    return entries


def _name(name):
    return name.decode("utf-8") if isinstance(name, bytes) else name


def read_class_names(path):
    """The class names an export carries, a tuple (None if it carries none).

    Args:
        path: An exported version directory (`EXPORT_DIR/<version>`: a
            SavedModel's `assets/labels.txt`, or the metadata of the ONNX or
            LiteRT file in it), or an `.onnx` or `.tflite` file.
    """
    import os

    path = os.fspath(path)
    if os.path.isdir(path):
        labels = os.path.join(path, "assets", class_names_lib.LABELS_FILE)
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return class_names_lib.read_labels_file(labels) if os.path.isfile(labels) else None
        files = [os.path.join(path, name) for name in formats.FILENAMES.values()
                 if os.path.isfile(os.path.join(path, name))]
        if not files:
            raise FileNotFoundError(f"'{path}' holds no SavedModel, ONNX or LiteRT file.")
        path = files[0]
    if path.endswith(".onnx"):
        value = read_onnx_metadata(path).get(class_names_lib.METADATA_KEY)
    else:
        value = read_litert_metadata(path).get(class_names_lib.METADATA_KEY)
        value = None if value is None else value.decode("utf-8")
    return None if value is None else tuple(json.loads(value))


def write_litert(served, path, quantize=None, representative_batches=None, class_names=None):
    """Writes `served` as a LiteRT (.tflite) file at `path`.

    Args:
        served: A `formats.serving_model`.
        path: The file to write; must end in `.tflite`.
        quantize: None (float32) or "int8".
        representative_batches: With "int8": a function returning an iterable
            of float32 image batches `[n, height, width, channels]` with
            pixel values in [0, 255], drawn from the training data. The
            converter runs the float network on them to record the range of
            every activation, which sets the int8 scales.
        class_names: Strings, one per class, stored as metadata (or None).
    """
    import tensorflow as tf

    options = {}
    if quantize == "int8":
        if representative_batches is None:
            raise ValueError("int8 quantization needs representative_batches.")

        def representative_dataset():
            for batch in representative_batches():
                yield {"images": np.asarray(batch, np.float32)}

        options = dict(
            optimizations=[tf.lite.Optimize.DEFAULT],
            representative_dataset=representative_dataset,
            target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
        )
    elif quantize is not None:
        formats.check_format(formats.LITERT, quantize)
    served.export(path, format="litert", input_signature=formats.input_signature(served),
                  verbose=False, **options)
    if class_names is not None:
        add_litert_metadata(path, {class_names_lib.METADATA_KEY:
                                   class_names_lib.metadata_value(class_names).encode("utf-8")})
