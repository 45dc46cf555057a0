"""Writing the ONNX and LiteRT files with Keras' own exporters.

Both start from `formats.serving_model` (the served network, with
preprocessing, softmax and top-k) and call `keras.Model.export`:

- ONNX: `format="onnx"`, which traces the model and converts the function
  with tf2onnx. Input `images`, outputs `probabilities`, `classes`, `scores`.
- LiteRT: `format="litert"`, which writes a SavedModel and converts it with
  `tf.lite.TFLiteConverter`; the file's one signature is `serving_default`
  with the same names. With `quantize="int8"`: post-training full-integer
  quantization (weights and activations int8, TFLite's
  `TFLITE_BUILTINS_INT8` op set), the activation ranges calibrated on a
  representative dataset of training images; the `images` input and the
  outputs stay float32, so clients call it exactly as the float32 file.
"""

import numpy as np

from bn_zoo.export import formats


def write_onnx(served, path):
    """Writes `served` (a `formats.serving_model`) as an ONNX file at `path`."""
    served.export(path, format="onnx", input_signature=formats.input_signature(served),
                  verbose=False)


def write_litert(served, path, quantize=None, representative_batches=None):
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
