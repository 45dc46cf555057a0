r"""Exports a trained workdir or a registered model as a SavedModel for serving.

    python -m trainers.export --workdir=/tmp/bn_mlp --export_dir=/tmp/serving/bn_mlp
    python -m trainers.export --model=bn_mlp --weights=mnist \
        --export_dir=/tmp/serving/bn_mlp [--version=3] [--nofold_batch_norm] \
        [--noconstant_weights]

Writes EXPORT_DIR/<version>/ (saved_model.pb, variables/), the layout
TensorFlow Serving loads. By default the graph is the inference network of
Algorithm 2: every batch normalization folded into the convolution or dense
layer before it (step 11), and the weights stored as graph constants (frozen
parameters), which TensorFlow serves faster than variables. See
bn_zoo/export/ for the signatures.
"""

from trainers import quiet  # First: quiets TensorFlow before it starts.

import os

from absl import app, flags, logging

_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Training workdir to export: its latest checkpoint, with the model named "
    "in its config.json. Mutually exclusive with --model.",
)
_MODEL = flags.DEFINE_string(
    "model",
    None,
    "Registered model to export instead of a workdir (see bn_zoo.list_models()), "
    "e.g. bn_mlp or bn_inception.",
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
_TOP_K = flags.DEFINE_integer(
    "top_k",
    5,
    "Number of top classes (`classes`, `scores`) the signatures return.",
    lower_bound=1,
)

flags.mark_flag_as_required("export_dir")
flags.register_multi_flags_validator(
    ["workdir", "model"],
    lambda values: (values["workdir"] is None) != (values["model"] is None),
    message="Pass exactly one of --workdir (a training run) or --model (a "
    "registered model).",
)
flags.register_multi_flags_validator(
    ["weights", "model"],
    lambda values: values["weights"] is None or values["model"] is not None,
    message="--weights goes with --model; a --workdir brings its own weights.",
)

# Errors a user can fix: printed as one line, exit code 1, nothing written.
_USER_ERRORS = (ValueError, TypeError, FileExistsError, FileNotFoundError,
                NotADirectoryError)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    from bn_zoo import export

    options = dict(
        version=_VERSION.value,
        fold_batch_norm=_FOLD.value,
        constant_weights=_CONSTANT_WEIGHTS.value,
        top_k=_TOP_K.value,
    )
    try:
        if _WORKDIR.value is not None:
            path = export.export_workdir(_WORKDIR.value, _EXPORT_DIR.value, **options)
        else:
            path = export.export_registered_model(
                _MODEL.value, _EXPORT_DIR.value, weights=_WEIGHTS.value, **options
            )
    except _USER_ERRORS as e:
        logging.error("Export failed, nothing was written: %s", e)
        raise SystemExit(1) from None
    logging.info(
        "Exported %s SavedModel with %s weights to %s",
        "folded" if _FOLD.value else "unfolded",
        "constant" if _CONSTANT_WEIGHTS.value else "variable",
        path,
    )
    print(path)


if __name__ == "__main__":
    app.run(main)
