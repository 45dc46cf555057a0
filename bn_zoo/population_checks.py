"""The checks `bn_zoo.population.estimate` runs on its data before it traces
the model, so that bad data fails with one clear line instead of a traced
function's error dump.

- `check_not_distributed`: a `tf.distribute` dataset or iterator yields
  per-replica parts of each batch (`PerReplica` values), which a model called
  outside the strategy cannot take.
- `check_batch`: a batch's `x` must fit the model's inputs (their number,
  rank, the sizes the model fixes, a numeric dtype); a dataset of labels
  only, images of another size, or strings are named as such.
- `call_error`: for what the checks cannot see (a subclassed model has no
  declared inputs), the traced call's error reduced to its message.
"""

import re
import sys

import keras
import numpy as np

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+)?(?:Error|Exception): (.*)$")


def check_not_distributed(data):
    """Refuses a distributed dataset or iterator (`tf.distribute`).

    Raises:
        TypeError: `data` is a `tf.distribute.DistributedDataset` or
            `DistributedIterator`.
    """
    tf = sys.modules.get("tensorflow")  # Distributed data exists only if it is imported.
    if tf is None:
        return
    if isinstance(data, (tf.distribute.DistributedDataset, tf.distribute.DistributedIterator)):
        raise TypeError(_DISTRIBUTED + f" Received: {type(data).__name__}.")


_DISTRIBUTED = (
    "population.estimate takes the plain dataset, not a distributed one: it runs the "
    "model outside the strategy on whole batches, and a distributed dataset yields "
    "per-replica parts of each batch (PerReplica values). Pass the dataset given to "
    "`strategy.experimental_distribute_dataset` (or the one the function of "
    "`distribute_datasets_from_function` makes), batched by the mini-batch each BN "
    "layer saw in training: the per-replica batch (the global batch / "
    "`strategy.num_replicas_in_sync`), or the global batch for synchronized layers."
)


def check_batch(model, x, index):
    """Checks batch `index` (1-based) `x` against the inputs of `model`.

    Only what the model declares is checked: a model or layer without
    `inputs` (subclassed, not built on an `Input`) passes.

    Raises:
        TypeError: a `PerReplica` value (a batch of a distributed dataset),
            or a non-numeric `x` (strings).
        ValueError: another number of inputs, or a rank or a fixed size
            that differs from the model's input.
    """
    tf = sys.modules.get("tensorflow")
    leaves = keras.tree.flatten(x)
    if tf is not None and any(isinstance(leaf, tf.distribute.DistributedValues)
                              for leaf in leaves):
        raise TypeError(_DISTRIBUTED + f" Received: batch {index} of per-replica values.")
    for leaf in leaves:
        dtype = _dtype(leaf)
        if dtype is not None and not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
            raise TypeError(
                f"population.estimate: batch {index} holds {dtype.name} values; the model "
                "takes numbers. Pass the training inputs as preprocessed for the model (the "
                f"data `fit` trained on). Received: x of {_describe(x)}.")
    inputs = _model_inputs(model)
    if inputs is None:
        return
    if isinstance(x, dict):
        names = [getattr(i, "name", None) for i in inputs]
        if set(x) != set(names):
            return  # Keys Keras maps another way; the call reports a mismatch.
        pairs = [(x[name], i) for name, i in zip(names, inputs)]
    elif len(inputs) == 1 and not isinstance(x, (list, tuple)):
        pairs = [(x, inputs[0])]
    else:
        items = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(items) != len(inputs):
            raise ValueError(
                f"population.estimate: batch {index} has {len(items)} inputs, model "
                f"'{model.name}' takes {len(inputs)}. A batch is x (one array, or a list "
                f"of one per input) or (x, y[, sample_weight]). Received: x of {_describe(x)}.")
        pairs = list(zip(items, inputs))
    for leaf, spec in pairs:
        shape, want = _shape(leaf), tuple(spec.shape)
        if shape is None:
            continue
        adjusted = shape
        # Keras adds or drops a last axis of size 1 (`Functional` models).
        if len(shape) == len(want) + 1 and shape[-1] == 1:
            adjusted = shape[:-1]
        elif len(shape) == len(want) - 1 and want[-1] == 1:
            adjusted = shape + (1,)
        fits = len(adjusted) == len(want) and all(
            w is None or s is None or s == w for s, w in zip(adjusted[1:], want[1:]))
        if fits:
            continue
        hint = ""
        dtype = _dtype(leaf)
        if len(shape) == 1 and len(want) >= 2 and dtype is not None and (
                dtype.is_integer or dtype.is_bool):
            hint = (" A batch of one integer per example looks like labels only: the data "
                    "must hold the inputs too, as x or (x, y).")
        raise ValueError(
            f"population.estimate: batch {index} does not fit the input of model "
            f"'{model.name}', which takes shape {want}: its x has shape {shape}.{hint} Pass "
            "training batches of the model's input, preprocessed as in training. Received: "
            f"x of {_describe(x)}.")


def call_error(model, x, index, error):
    """A ValueError that says which batch the model could not be run on, with
    the message of `error` (a traced function's error: the lines of the
    trace and ANSI codes dropped)."""
    message = _last_message(error).rstrip()
    if not message.endswith((".", "!", "?")):
        message += "."
    return ValueError(
        f"population.estimate: running model '{getattr(model, 'name', model)}' in training "
        f"mode on batch {index} failed: {message} Received: x of {_describe(x)}.")


def _last_message(error):
    text = _ANSI.sub("", str(error))
    lines = [line.strip() for line in text.splitlines()]
    found = None
    for i, line in enumerate(lines):
        match = _ERROR_LINE.match(line)
        if match:
            found = i
    if found is None:
        return text.strip().splitlines()[-1] if text.strip() else type(error).__name__
    message = _ERROR_LINE.match(lines[found]).group(1).strip()
    if message.startswith("Exception encountered when calling"):
        following = [line for line in lines[found + 1:] if line]
        if following:
            message = following[0]
    return message


def _model_inputs(model):
    if not isinstance(model, keras.Model):
        return None
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):  # Subclassed or not built.
        return None
    return list(inputs) if inputs else None


def _shape(leaf):
    shape = getattr(leaf, "shape", None)
    if shape is None:
        return None
    try:
        return tuple(None if d is None else int(d) for d in shape)
    except (TypeError, ValueError):  # Unknown rank.
        return None


def _dtype(leaf):
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
        return None
    try:
        name = keras.backend.standardize_dtype(dtype)
    except ValueError:
        name = str(getattr(dtype, "name", dtype))
    if name in ("string", "object") or name.startswith(("<U", "|S", "<S", "str", "bytes")):
        return _Kind(name, False, False, False)
    try:
        kind = np.dtype(name).kind
    except TypeError:
        return _Kind(name, name.startswith(("float", "bfloat")), name.startswith(("int", "uint")),
                     name == "bool")
    return _Kind(name, kind in "fc", kind in "iu", kind == "b")


class _Kind:
    def __init__(self, name, is_floating, is_integer, is_bool):
        self.name, self.is_floating, self.is_integer, self.is_bool = (
            name, is_floating, is_integer, is_bool)


def _describe(x):
    parts = []
    for leaf in keras.tree.flatten(x):
        shape, dtype = _shape(leaf), _dtype(leaf)
        parts.append(f"shape {shape} {dtype.name if dtype else type(leaf).__name__}")
    return ", ".join(parts) if parts else type(x).__name__
