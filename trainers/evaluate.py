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

from . import quiet  # First: quiets TensorFlow before it starts.

import sys

from absl import app, flags, logging

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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    from bn_zoo import evaluation, runs
    from bn_zoo.data import imagenet
    from bn_zoo.evaluation import members as members_lib

    data = dict(source=_SOURCE.value, data_dir=_DATA_DIR.value, tfds_name=_TFDS_NAME.value,
                eval_split=_SPLIT.value, num_classes=_NUM_CLASSES.value,
                label_offset=_LABEL_OFFSET.value)
    split = members_lib.split_list
    try:
        members = members_lib.from_lists(
            models=split(_MODEL.value), weights=split(_WEIGHTS.value),
            model_kwargs=[members_lib.parse_model_kwargs(t) for t in _MODEL_KWARGS.value],
            preprocessing=split(_PREPROCESSING.value), workdirs=split(_WORKDIR.value),
            before_loading=lambda: imagenet.validate(data, splits=[_SPLIT.value]),
            announce=logging.info)
        results = evaluation.evaluate(
            members, data, protocol=int(_CROPS.value), batch_size=_BATCH_SIZE.value,
            num_examples=_NUM_EXAMPLES.value, image_size=_IMAGE_SIZE.value,
            progress=logging.info)
        if _OUTPUT.value:
            runs.write_json(_OUTPUT.value, results.to_dict())
    except _USER_ERRORS as error:
        print(f"ERROR ({type(error).__name__}): {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(results.table(), flush=True)


def run():
    """The console command `bn-zoo-evaluate` (pyproject.toml), as
    `python -m trainers.evaluate`."""
    quiet.run(main)


if __name__ == "__main__":
    run()
