r"""Top-1 / top-5 accuracy on ImageNet's validation split with the paper's crop protocols.

    python -m trainers.evaluate --model=bn_inception --weights=imagenet --crops=144
    python -m trainers.evaluate --model=bn_inception --weights=/tmp/bn.weights.h5 \
        --model_kwargs='{"depth_multiplier": 0.5}' --preprocessing=inception
    python -m trainers.evaluate --workdir=workdirs/imagenet/bn_x5 \
        --source=tfrecord --data_dir=/data/imagenet/tfrecords --crops=10
    python -m trainers.evaluate --model=bn_inception,bn_inception \
        --weights=imagenet,imagenet_caffe --workdir=workdirs/imagenet/bn_x30   # an ensemble

Several models (repeated or comma-separated --model and --workdir) are also
evaluated as an ensemble: the mean of their softmax outputs. Prints a
progress bar, then one row per model (and the ensemble) with top-1, top-5
and their errors; --output also writes them as JSON. The crop protocols are
defined in bn_zoo/evaluation/crops.py and docs/evaluation.md.
"""

import ast
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

_MODEL = flags.DEFINE_multi_string(
    "model", [],
    "Registered model(s) to evaluate (bn_zoo.list_models()), e.g. bn_inception. "
    "Repeat the flag or separate names with commas for an ensemble; each needs "
    "its --weights.")
_WEIGHTS = flags.DEFINE_multi_string(
    "weights", [],
    "Weights of each --model, in order: a registered name (e.g. imagenet) or the "
    "path of a .weights.h5 file. Given once, it applies to every --model.")
_MODEL_KWARGS = flags.DEFINE_multi_string(
    "model_kwargs", [],
    "Extra bn_zoo.create_model arguments of each --model, in order, as a JSON or "
    "Python dict, e.g. '{\"input_shape\": [299, 299, 3], \"classes\": 1001}' (what "
    "a .weights.h5 file was saved with; registered weights bring their own). Given "
    "once, it applies to every --model. Repeat the flag (no comma lists: dicts "
    "contain commas). classifier_activation may be None (logits: the softmax is "
    "applied here).")
_PREPROCESSING = flags.DEFINE_multi_string(
    "preprocessing", [],
    "Input scaling of each --model, in order, overriding the default (the "
    "registered weights' mode, or the model's for a .weights.h5 file): inception "
    "([-1, 1]) or caffe_bn_inception (BGR minus 104, 117, 128). Given once, it "
    "applies to every --model.")
_WORKDIR = flags.DEFINE_multi_string(
    "workdir", [],
    "Trainer workdir(s) to evaluate: the newest checkpoint, with the BN "
    "statistics the run ended with and its model's registered preprocessing. "
    "Repeat or comma-separate for an ensemble (with any --model).")
_CROPS = flags.DEFINE_enum(
    "crops", "1", ["1", "10", "144"],
    "Crop protocol: 1 (central 87.5%, resized), 10 (shorter side S/0.875; 4 corners, "
    "centre and their mirrors) or 144 (GoogLeNet: shorter side at 4 scales, 3 "
    "squares, 4 corners + centre + whole square, mirrors). S is the models' input "
    "size. Outputs of an image's crops are averaged.")
_SOURCE = flags.DEFINE_enum(
    "source", "tfds", ["tfds", "tfrecord"],
    "Where the validation images come from: tfds (the prepared imagenet2012 of "
    "TensorFlow Datasets, labels 0..999) or tfrecord (shards validation-NNNNN-of-NNNNN "
    "in --data_dir, labels 1..1000).")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None,
    "tfds: the TFDS data directory (default $TFDS_DATA_DIR, else "
    "~/tensorflow_datasets). tfrecord: the directory of the shards (required).")
_TFDS_NAME = flags.DEFINE_string("tfds_name", "imagenet2012", "TFDS data set name.")
_SPLIT = flags.DEFINE_string(
    "split", "validation",
    "Split to evaluate: a TFRecord shard prefix, or a TFDS split (slices such as "
    "validation[:1%] work).")
_NUM_CLASSES = flags.DEFINE_integer(
    "num_classes", 1000,
    "Classes of the data. Models must output this many, or one more (class 0 = "
    "background, as TF-slim's 1001-class models: that column is dropped).",
    lower_bound=1)
_LABEL_OFFSET = flags.DEFINE_integer(
    "label_offset", None,
    "Subtracted from stored labels. Default: 1 for tfrecord (1..1000), 0 for tfds.")
_NUM_EXAMPLES = flags.DEFINE_integer(
    "num_examples", None, "Evaluate only the first N images (default: all).",
    lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 128,
    "Crops per model call, rounded down to whole images (at least one): 128 runs "
    "128 images of 1 crop, 12 of 10 crops, 1 of 144.", lower_bound=1)
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", None,
    "Crop side S; default the models' input size (all models must share it). "
    "Needed only for models built without a fixed input size.", lower_bound=1)
_OUTPUT = flags.DEFINE_string(
    "output", None, "Also write the results as JSON to this file (atomically).")

# Errors a user can fix: one line on stderr, exit code 1.
_USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError)


def _split(values):
    """Repeated flags with comma-separated items, as one list."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _per_model(values, count, flag):
    """`values` given once for all `count` models, or once per model."""
    if len(values) == 1:
        return values * count
    if len(values) not in (0, count):
        raise ValueError(
            f"{len(values)} --{flag} for {count} --model: give it once (for every "
            "model) or once per --model, in the same order.")
    return values or [None] * count


def _parse_kwargs(text):
    """A dict from JSON or a Python literal (None, True, tuples allowed)."""
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, dict):
            return value
    raise ValueError(
        f"--model_kwargs={text!r} is not a JSON or Python dict; write e.g. "
        "'{\"depth_multiplier\": 0.5, \"input_shape\": [224, 224, 3]}'.")


def members():
    """The evaluation's members from the flags, models first, then workdirs."""
    from bn_zoo import evaluation

    models, workdirs = _split(_MODEL.value), _split(_WORKDIR.value)
    if not models and not workdirs:
        raise ValueError("Nothing to evaluate: pass --model (with --weights) and/or --workdir.")
    weights = _split(_WEIGHTS.value)
    if models and not weights:
        raise ValueError(
            "--model needs --weights: a registered name (see bn_zoo.model_info(name)."
            "weights) or a .weights.h5 path.")
    if weights and not models:
        raise ValueError("--weights goes with --model; a --workdir brings its own weights.")
    weights = _per_model(weights, len(models), "weights")
    kwargs = _per_model([_parse_kwargs(t) for t in _MODEL_KWARGS.value], len(models),
                        "model_kwargs")
    modes = _per_model(_split(_PREPROCESSING.value), len(models), "preprocessing")
    result = []
    for name, w, k, mode in zip(models, weights, kwargs, modes):
        print(f"Loading {name} ({w})", flush=True)
        result.append(evaluation.registered(name, w, model_kwargs=k, preprocessing=mode))
    for workdir in workdirs:
        print(f"Loading {workdir}", flush=True)
        result.append(evaluation.from_workdir(workdir))
    return result


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    import logging as std_logging

    std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
    from bn_zoo import evaluation
    from bn_zoo.training import workdir as workdir_lib

    data = dict(source=_SOURCE.value, data_dir=_DATA_DIR.value, tfds_name=_TFDS_NAME.value,
                eval_split=_SPLIT.value, num_classes=_NUM_CLASSES.value,
                label_offset=_LABEL_OFFSET.value)
    try:
        results = evaluation.evaluate(
            members(), data, protocol=int(_CROPS.value), batch_size=_BATCH_SIZE.value,
            num_examples=_NUM_EXAMPLES.value, image_size=_IMAGE_SIZE.value)
        if _OUTPUT.value:
            workdir_lib.write_json(_OUTPUT.value, results.to_dict())
    except _USER_ERRORS as error:
        print(f"ERROR ({type(error).__name__}): {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(results.table(), flush=True)


if __name__ == "__main__":
    app.run(main)
