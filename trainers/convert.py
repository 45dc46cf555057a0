r"""Converts a public BN-Inception release to a Keras `.weights.h5` file.

    python -m trainers.convert --source=slim \
        --input=inception_v2_2016_08_28.tar.gz --output=bn_inception_slim.weights.h5
    python -m trainers.convert --source=caffe_torch \
        --input=bn_inception-52deb4733.pth --output=bn_inception_caffe.weights.h5

`--source=slim` reads TF-slim's `inception_v2` (the release archive, or the
checkpoint prefix `.../inception_v2.ckpt`); `--source=caffe_torch` the Caffe
BN-Inception's PyTorch state dict (needs `pip install bn_zoo[torch]`). The
output loads with the matching factory arguments, printed at the end, e.g.

    bn_zoo.create_model("bn_inception", variant="slim", weights="out.weights.h5")

The output is written atomically, then its checksum file `<output>.sha256`
(`sha256sum -c` reads it; `bn_zoo.create_model(weights=...)` checks the file
against it): a failed conversion leaves neither.
"""

from . import quiet  # First: quiets TensorFlow before it starts.

import os

from absl import app, flags, logging

_SOURCE = flags.DEFINE_enum(
    "source", None, ["slim", "caffe_torch"],
    "Release format: 'slim' (TF-slim inception_v2 checkpoint or its .tar.gz) or "
    "'caffe_torch' (the Caffe BN-Inception's PyTorch .pth state dict).")
_INPUT = flags.DEFINE_string("input", None, "The release file to convert.")
_OUTPUT = flags.DEFINE_string(
    "output", None, "The Keras weights file to write; must end in .weights.h5 "
    "and not exist yet.")
_CLASSES = flags.DEFINE_integer(
    "classes", 1000,
    "Classes of the converted classifier: 1000; with --source=slim also 1001, "
    "keeping slim's background class 0.")
_INCLUDE_TOP = flags.DEFINE_boolean(
    "include_top", True, "Convert the classifier too; false writes the backbone only.")
for _name in ("source", "input", "output"):
    flags.mark_flag_as_required(_name)

_USER_ERRORS = (ValueError, TypeError, ImportError, FileExistsError, FileNotFoundError)


def convert(source, input_path, output_path, classes=1000, include_top=True):
    """Converts `input_path` and writes `output_path` atomically, with its
    checksum file `<output_path>.sha256`; returns the factory arguments that
    load it."""
    from bn_zoo.models import releases, weights_files

    output_path = os.path.abspath(output_path)
    if not output_path.endswith(".weights.h5"):
        raise ValueError(f"--output must end in '.weights.h5'. Received: {output_path}")
    if os.path.exists(output_path):
        raise FileExistsError(f"{output_path} exists; choose another --output or remove it.")
    if not os.path.exists(input_path):
        raise FileNotFoundError(f"--input {input_path} does not exist.")
    kwargs = dict(include_top=include_top, classes=classes)
    model = releases.converter(source)(input_path, **kwargs)
    weights_files.save_weights_atomically(model, output_path)
    variant = "slim" if source == "slim" else "caffe"
    return dict(kwargs, variant=variant)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    try:
        kwargs = convert(_SOURCE.value, _INPUT.value, _OUTPUT.value,
                         _CLASSES.value, _INCLUDE_TOP.value)
    except _USER_ERRORS as e:
        logging.error("Conversion failed, nothing was written: %s", e)
        raise SystemExit(1) from None
    arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    print(f"Wrote {_OUTPUT.value}. Load it with "
          f"bn_zoo.create_model('bn_inception', {arguments}, weights={_OUTPUT.value!r})")


def run():
    """The console command `bn-zoo-convert` (pyproject.toml), as
    `python -m trainers.convert`."""
    quiet.run(main)


if __name__ == "__main__":
    run()
