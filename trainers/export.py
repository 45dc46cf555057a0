r"""Exports a trained workdir, a registered model or a .keras file for serving:
a SavedModel, an ONNX file or a LiteRT file (float32 or int8), carrying the
class names.

    python -m trainers.export --workdir=/tmp/bn_mlp --export_dir=/tmp/serving/bn_mlp
    python -m trainers.export --model_file=/tmp/finetuned.keras \
        --class_names_file=/tmp/labels.txt --export_dir=/tmp/serving/finetuned
    python -m trainers.export --model=bn_mlp --weights=mnist \
        --export_dir=/tmp/serving/bn_mlp [--version=3] [--nofold_batch_norm] \
        [--noconstant_weights]
    python -m trainers.export --model=bn_mlp --weights=mnist --format=onnx \
        --export_dir=/tmp/onnx/bn_mlp
    python -m trainers.export --model=bn_mlp --weights=mnist --format=litert \
        --quantize=int8 --calibration_steps=100 --export_dir=/tmp/litert/bn_mlp

Writes EXPORT_DIR/<version>/: saved_model.pb, variables/ and
assets/labels.txt (the layout TensorFlow Serving loads), or model.onnx, or
model.tflite, with labels.txt beside. By default the
graph is the inference network of Algorithm 2: every batch normalization
folded into the convolution or dense layer before it (step 11), and the
weights stored as graph constants (frozen parameters), which TensorFlow
serves faster than variables. See bn_zoo/export/ for the signatures and
docs/export.md for the ONNX and LiteRT files.
"""

from . import quiet  # First: quiets TensorFlow before it starts.

import errno
import os

from absl import app, flags, logging

_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Training workdir to export: its latest checkpoint, with the model named "
    "in its config.json. Exactly one of --workdir, --model, --model_file.",
)
_MODEL = flags.DEFINE_string(
    "model",
    None,
    "Registered model to export instead of a workdir (see bn_zoo.list_models()), "
    "e.g. bn_mlp or bn_inception.",
)
_MODEL_FILE = flags.DEFINE_string(
    "model_file",
    None,
    "A Keras model file to export (model.save('model.keras')), e.g. a fine-tuned "
    "network; the zoo's layers load by themselves. Needs --preprocessing unless "
    "the model scales its own input (include_preprocessing=True, at any depth).",
)
_PREPROCESSING = flags.DEFINE_string(
    "preprocessing",
    None,
    "The scaling of the 0-255 pixels the served graph applies before the model "
    "(a bn_zoo.models.PREPROCESSING_MODES name). Default: the registered weights' "
    "or the run's; needed by a --model_file that does not scale its input itself, "
    "refused for a model that does (its pixels would be scaled twice).",
)
_CLASS_NAMES_FILE = flags.DEFINE_string(
    "class_names_file",
    None,
    "A text file with one class name per line, in output order, carried by the "
    "export. Default: the run's recorded names (WORKDIR/labels.txt), the "
    "registered weights' label set, else the class indices.",
)
_IMAGE_SHAPE = flags.DEFINE_list(
    "image_shape",
    None,
    "height,width,channels of the served images, for a --model_file whose input "
    "is not an image (e.g. 28,28,1 for a flat 784-input MLP).",
)
_WEIGHTS = flags.DEFINE_string(
    "weights",
    None,
    "With --model: registered weights name (e.g. 'mnist') or path to a "
    ".weights.h5 file. Default: random initialization.",
)
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir",
    None,
    "Base directory of the exported model; the SavedModel goes to "
    "EXPORT_DIR/<version>/.",
)
_VERSION = flags.DEFINE_integer(
    "version",
    None,
    "Version number (positive). Default: 1 + the largest existing version. An "
    "existing version is never overwritten.",
    lower_bound=1,
)
_FOLD = flags.DEFINE_boolean(
    "fold_batch_norm",
    True,
    "Fold each batch normalization into the preceding conv/dense layer "
    "(Algorithm 2, step 11). false keeps the BN layers in the graph.",
)
_CONSTANT_WEIGHTS = flags.DEFINE_boolean(
    "constant_weights",
    True,
    "Store the weights as constants of the serving graph (the frozen inference "
    "network; TensorFlow optimizes it with the weights known, so it serves "
    "faster). false keeps them as variables, e.g. to read them back from the "
    "SavedModel or for models over 1 GiB.",
)
_FORMAT = flags.DEFINE_string(
    "format",
    "saved_model",
    "Export format: saved_model (TensorFlow Serving), onnx (ONNX Runtime) or "
    "litert (LiteRT / TensorFlow Lite). onnx and litert need the export extra: "
    "pip install 'bn_zoo[export]'.",
)
_QUANTIZE = flags.DEFINE_string(
    "quantize",
    None,
    "With --format=litert: int8 for post-training full-integer quantization, "
    "calibrated on the model's training data. Default: float32.",
)
_CALIBRATION_STEPS = flags.DEFINE_integer(
    "calibration_steps",
    100,
    "With --quantize=int8: batches of 32 training images the activation ranges "
    "are calibrated on.",
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir",
    None,
    "With --model and --quantize: where the calibration data is (MNIST for the "
    "MLPs: a TFDS data directory; ImageNet for the Inception family: see "
    "--data_source). Default: $TFDS_DATA_DIR. A --workdir calibrates on its "
    "own config.data.",
)
_DATA_SOURCE = flags.DEFINE_enum(
    "data_source",
    "tfds",
    ["tfds", "tfrecord"],
    "With --model, --quantize and an Inception model: ImageNet from TFDS "
    "(imagenet2012) or TFRecord shards in --data_dir.",
)
_TOP_K = flags.DEFINE_integer(
    "top_k",
    5,
    "Number of top classes (`classes`, `scores`) the signatures return.",
    lower_bound=1,
)

flags.mark_flag_as_required("export_dir")
flags.register_multi_flags_validator(
    ["workdir", "model", "model_file"],
    lambda values: sum(values[k] is not None for k in ("workdir", "model", "model_file")) == 1,
    message="Pass exactly one of --workdir (a training run), --model (a "
    "registered model) or --model_file (a .keras file).",
)
flags.register_validator(
    "image_shape",
    lambda value: value is None or (len(value) == 3 and all(v.strip().isdigit() for v in value)),
    message="--image_shape is height,width,channels, e.g. 28,28,1.",
)
flags.register_multi_flags_validator(
    ["image_shape", "model_file"],
    lambda values: values["image_shape"] is None or values["model_file"] is not None,
    message="--image_shape goes with --model_file; a --model or --workdir brings its own.",
)
flags.register_multi_flags_validator(
    ["weights", "model"],
    lambda values: values["weights"] is None or values["model"] is not None,
    message="--weights goes with --model; a --workdir brings its own weights.",
)

flags.register_multi_flags_validator(
    ["data_dir", "data_source", "model"],
    lambda values: values["model"] is not None
    or (values["data_dir"] is None and values["data_source"] == "tfds"),
    message="--data_dir and --data_source go with --model; a --workdir "
    "calibrates on its own config.data.",
)

# Errors a user can fix: printed as one line, exit code 1, nothing written.
_USER_ERRORS = (ValueError, TypeError, FileExistsError, FileNotFoundError,
                NotADirectoryError, ImportError)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    from bn_zoo import export

    saved_model = _FORMAT.value == "saved_model"
    options = dict(
        version=_VERSION.value,
        fold_batch_norm=_FOLD.value,
        top_k=_TOP_K.value,
        format=_FORMAT.value,
        quantize=_QUANTIZE.value,
        calibration_steps=_CALIBRATION_STEPS.value,
        constant_weights=_CONSTANT_WEIGHTS.value,  # ONNX, LiteRT: False is refused.
    )
    if _PREPROCESSING.value is not None:
        options["preprocessing"] = _PREPROCESSING.value
    try:
        if _CLASS_NAMES_FILE.value is not None:
            options["class_names"] = export.read_labels_file(_CLASS_NAMES_FILE.value)
        if _WORKDIR.value is not None:
            path = export.export_workdir(_WORKDIR.value, _EXPORT_DIR.value, **options)
        elif _MODEL_FILE.value is not None:
            options.pop("calibration_steps")
            if _IMAGE_SHAPE.value is not None:
                options["image_shape"] = tuple(int(v) for v in _IMAGE_SHAPE.value)
            path = export.export_model_file(_MODEL_FILE.value, _EXPORT_DIR.value, **options)
        else:
            path = export.export_registered_model(
                _MODEL.value, _EXPORT_DIR.value, weights=_WEIGHTS.value,
                data_dir=_DATA_DIR.value, data_source=_DATA_SOURCE.value, **options
            )
    except _USER_ERRORS as e:
        logging.error("Export failed, nothing was written: %s", e)
        raise SystemExit(1) from None
    except OSError as e:  # A read-only, full or forbidden --export_dir.
        from bn_zoo.runs.files import WRITE_ERRORS

        import sys

        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            message = (f"Cannot write {e.filename}: {e.strerror}. Nothing was written. Free "
                       "some space there (or pass an --export_dir on another disk) and rerun.")
        elif e.errno in WRITE_ERRORS:
            message = (f"Cannot write {e.filename}: {e.strerror}. Nothing was written. "
                       "Pass a writable --export_dir and rerun.")
        elif isinstance(e, ConnectionError):  # Registered weights that need a download.
            message = str(e)
        else:
            raise
        print(f"ERROR ({type(e).__name__}): {message}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    if saved_model:
        logging.info(
            "Exported %s SavedModel with %s weights to %s",
            "folded" if _FOLD.value else "unfolded",
            "constant" if _CONSTANT_WEIGHTS.value else "variable",
            path,
        )
    else:
        logging.info(
            "Exported %s %s %s to %s",
            "folded" if _FOLD.value else "unfolded",
            _QUANTIZE.value or "float32",
            _FORMAT.value,
            os.path.join(path, export.FILENAMES[_FORMAT.value]),
        )
    print(path)


def run():
    """The console command `bn-zoo-export` (pyproject.toml), as
    `python -m trainers.export`."""
    quiet.run(main)


if __name__ == "__main__":
    run()
