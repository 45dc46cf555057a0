"""TF-slim's `inception_v2` checkpoint to the zoo's `bn_inception(variant="slim")`.

The release is `inception_v2_2016_08_28.tar.gz`, holding `inception_v2.ckpt`
(a TF checkpoint: the single-file V1 format, or `.index` + `.data-*` of V2).
Variable names are those of `nets/inception_v2.py` under `InceptionV2/`:

    Conv2d_1a_7x7/{depthwise_weights, pointwise_weights, biases}     (no BN)
    <unit>/weights, <unit>/BatchNorm/{beta, moving_mean, moving_variance}
    Logits/Conv2d_1c_1x1/{weights [1, 1, 1024, 1001], biases [1001]}

slim's BN has no γ (`scale=False`); its convolutions are [h, w, in, out] as
Keras'. Its classifier is a 1×1 convolution over 1001 classes where class 0
is "background": `classes=1000` drops it, `classes=1001` keeps it.
"""

import contextlib
import os
import tarfile
import tempfile
import zlib

import numpy as np
import tensorflow as tf

from bn_zoo.models.releases.assign import ConversionError, assign, build, check_classes, units

SCOPE = "InceptionV2"
CHECKPOINT_NAME = "inception_v2.ckpt"
_STEM = {"conv1": "Conv2d_1a_7x7", "conv2_reduce": "Conv2d_2b_1x1", "conv2": "Conv2d_2c_3x3"}
_MODULES = {
    "3a": "Mixed_3b", "3b": "Mixed_3c", "3c": "Mixed_4a", "4a": "Mixed_4b",
    "4b": "Mixed_4c", "4c": "Mixed_4d", "4d": "Mixed_4e", "4e": "Mixed_5a",
    "5a": "Mixed_5b", "5b": "Mixed_5c",
}
_BRANCHES = {
    "1x1": "Branch_0/Conv2d_0a_1x1",
    "3x3_reduce": "Branch_1/Conv2d_0a_1x1",
    "3x3": "Branch_1/Conv2d_0b_3x3",
    "double_3x3_reduce": "Branch_2/Conv2d_0a_1x1",
    "double_3x3_1": "Branch_2/Conv2d_0b_3x3",
    "double_3x3_2": "Branch_2/Conv2d_0c_3x3",
    "pool_proj": "Branch_3/Conv2d_0b_1x1",
}
# The strided modules (3c, 4e) have no 1×1 branch, so slim numbers from 0 and
# names the stride-2 layers "_1a".
_STRIDED_BRANCHES = {
    "3x3_reduce": "Branch_0/Conv2d_0a_1x1",
    "3x3": "Branch_0/Conv2d_1a_3x3",
    "double_3x3_reduce": "Branch_1/Conv2d_0a_1x1",
    "double_3x3_1": "Branch_1/Conv2d_0b_3x3",
    "double_3x3_2": "Branch_1/Conv2d_1a_3x3",
}
LOGITS = f"{SCOPE}/Logits/Conv2d_1c_1x1"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def slim_scope(unit):
    """The slim variable scope of a zoo unit, e.g. "inception_3c_3x3" ->
    "InceptionV2/Mixed_4a/Branch_0/Conv2d_1a_3x3"."""
    if unit in _STEM:
        return f"{SCOPE}/{_STEM[unit]}"
    _, module, branch = unit.split("_", 2)
    table = _STRIDED_BRANCHES if module in ("3c", "4e") else _BRANCHES
    return f"{SCOPE}/{_MODULES[module]}/{table[branch]}"


def from_slim(checkpoint_path, **factory_kwargs):
    """The zoo's BN-Inception with the weights of a TF-slim checkpoint.

    Args:
        checkpoint_path: The release archive (`*.tar.gz` holding
            `inception_v2.ckpt`) or a checkpoint prefix (`.../inception_v2.ckpt`).
        **factory_kwargs: Arguments of `create_model("bn_inception", ...)`:
            `include_top`, `classes` (1000 drops the background class, 1001
            keeps it), `classifier_activation`, `input_shape`, `pooling`, ...
            The variant is "slim".

    Returns:
        A `keras.Model` in inference-ready state (moving statistics).

    Raises:
        ConversionError: the file is not a slim inception_v2 checkpoint, or is
            truncated; no model is returned.
        ValueError: `classes` other than 1000 or 1001 with include_top=True.
    """
    if "weights" in factory_kwargs:
        raise TypeError("from_slim takes its weights from the checkpoint; drop `weights`.")
    classes = check_classes(factory_kwargs, (1000, 1001), "TF-slim inception_v2")
    with _opened(checkpoint_path) as (prefix, source):
        tensors = _read(prefix, source)
    model, finish = build("slim", factory_kwargs)
    values, used = {}, set()

    def take(name):
        if name not in tensors:
            raise ConversionError(
                f"{source}: no variable {name!r}. It is not TF-slim's inception_v2 "
                f"checkpoint (it has {len(tensors)} variables, e.g. "
                f"{sorted(tensors)[:3]})."
            )
        used.add(name)
        return tensors[name]

    for unit, (conv, bn) in units(model).items():
        scope = slim_scope(unit)
        if unit == "conv1" and bn is None:
            values[(conv.name, "depthwise_kernel")] = take(f"{scope}/depthwise_weights")
            values[(conv.name, "pointwise_kernel")] = take(f"{scope}/pointwise_weights")
            values[(conv.name, "bias")] = take(f"{scope}/biases")
            continue
        values[(conv.name, "kernel")] = take(f"{scope}/weights")
        for attribute in ("beta", "moving_mean", "moving_variance"):
            values[(bn.name, attribute)] = take(f"{scope}/BatchNorm/{attribute}")
    kernel, bias = take(f"{LOGITS}/weights"), take(f"{LOGITS}/biases")
    if any(layer.name == "predictions" for layer in model.layers):
        kernel = kernel.reshape(kernel.shape[-2:])
        first = 1 if classes == 1000 else 0
        values[("predictions", "kernel")] = kernel[:, first:]
        values[("predictions", "bias")] = bias[first:]
    unused = sorted(n for n in tensors if n.startswith(SCOPE + "/") and n not in used)
    if unused:
        raise ConversionError(
            f"{source}: variables the zoo's network does not have: {unused[:5]}"
            f"{' ...' if len(unused) > 5 else ''}. It is another slim network."
        )
    assign(model, values, source)
    return finish(model)


def _read(prefix, source):
    """{name: array} of every variable of the checkpoint at `prefix`."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        return {name: np.asarray(reader.get_tensor(name)) for name in reader.get_variable_to_shape_map()}
    except (tf.errors.OpError, ValueError) as error:
        raise ConversionError(
            f"{source} cannot be read as a TF checkpoint ({_first_line(error)}): "
            "it is truncated or corrupted. Download it again."
        ) from error


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


@contextlib.contextmanager
def _opened(path):
    """Yields (checkpoint prefix, name for messages) of a release archive
    (extracted to a temporary directory) or of a checkpoint prefix."""
    path = os.fspath(path)
    if not path.endswith(ARCHIVE_SUFFIXES):
        yield path, path
        return
    with tempfile.TemporaryDirectory(prefix="bn_zoo_slim_") as directory:
        yield extract_checkpoint(path, directory), path


def extract_checkpoint(archive, directory):
    """Extracts the checkpoint files of a slim release archive into
    `directory`; returns the prefix. Checks the archive's structure: regular
    files only, `inception_v2.ckpt` (V1) or its `.index` and `.data-*` (V2).

    Raises:
        ConversionError: a truncated archive, or one without the checkpoint.
    """
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            names = {os.path.basename(m.name): m for m in members}
            wanted = [n for n in names if n == CHECKPOINT_NAME or n.startswith(CHECKPOINT_NAME + ".")]
            v1 = CHECKPOINT_NAME in names
            v2 = f"{CHECKPOINT_NAME}.index" in names and any(".data-" in n for n in wanted)
            if not (v1 or v2):
                raise ConversionError(
                    f"{archive} is not the TF-slim inception_v2 release: it holds "
                    f"{sorted(names)[:5]}, not {CHECKPOINT_NAME}."
                )
            for name in wanted:
                source = tar.extractfile(names[name])
                with open(os.path.join(directory, name), "wb") as target:
                    while block := source.read(1 << 20):
                        target.write(block)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise ConversionError(
            f"{archive} cannot be read ({_first_line(error)}): the download is "
            "truncated or corrupted. Download it again."
        ) from error
    return os.path.join(directory, CHECKPOINT_NAME)
