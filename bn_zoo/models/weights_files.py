"""Keras `.weights.h5` files, read all or nothing and written atomically.

`load_weights(model, path)` checks the file's variables against the model's
before it changes anything: every variable the model has must be in the
file with the same shape, and the file must have nothing else. It reads the
layout Keras would write without writing it: each layer's
`save_own_variables` lists its variables, at the group Keras gives the layer
(`layers/<class name in snake case>[_<rank>]/vars/<index>`). Where that
cannot account for every weight of the model (nested models, layers with
sub-layers), it asks Keras itself, through a temporary file.
"""

import hashlib
import os
import re
import tempfile
import uuid

import h5py
import numpy as np

WEIGHTS_SUFFIX = ".weights.h5"


def sha256_of(path):
    """The sha256 hex digest of a file (what `RegisteredWeights` records)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights_atomically(model, path):
    """`model.save_weights(path)`, atomically: written to a hidden partial file
    beside `path`, then renamed over it, so `path` is never half-written and
    a failure leaves no file behind. Creates the directory if needed."""
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f".{uuid.uuid4().hex}.partial{WEIGHTS_SUFFIX}")
    try:
        model.save_weights(partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def load_weights(model, filepath, allow_unused_layers=False):
    """Loads a `.weights.h5` file into `model`, all or nothing.

    The file's variables are first checked against the model's: every
    variable the model has must be in the file with the same shape, and the
    file must have nothing else (except, with `allow_unused_layers=True`,
    whole layers the model does not have, such as the classifier of a model
    built with `include_top=False`). A file that does not fit is refused with
    the variables that differ, and the model is left untouched. If loading
    still fails half-way, every variable is restored to its previous value.

    Every layer loads its values with its own `load_own_variables`, as in
    Keras' `model.load_weights` (bn_zoo's BatchNormalization reads files
    written before its last two variables existed, and Keras' layout).

    Args:
        model: A built Keras model.
        filepath: Path to a `*.weights.h5` file.
        allow_unused_layers: Accept layers in the file that the model lacks.

    Raises:
        ValueError: the file cannot be read, or does not fit the model.
    """
    filepath = os.fspath(filepath)
    try:
        found = file_layout(filepath)
    except OSError as error:
        raise ValueError(
            f"Cannot read {filepath!r} as a Keras '*{WEIGHTS_SUFFIX}' file "
            f"({error}). It may be truncated or corrupted."
        ) from error
    plan = _plan(model)
    expected = plan[0] if plan else written_layout(model)
    names = layer_names(model)
    problems = _structure_problems(expected, found, allow_unused_layers, names)
    if problems and plan:
        # The plan covers the model's weights; Keras may save more state
        # (e.g. a compiled model's optimizer), which only its own walk knows.
        plan, expected = None, written_layout(model)
        problems = _structure_problems(expected, found, allow_unused_layers, names)
    if problems:
        raise ValueError(
            f"The weights in {filepath!r} do not fit model {model.name!r}:\n  "
            + "\n  ".join(problems[:10])
            + (f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else "")
            + "\nBuild the model with the arguments the weights were saved with "
            "(architecture, input_shape, classes, include_top)."
        )
    snapshot = [v.numpy() for v in model.variables]
    try:
        if plan:
            _load_planned(plan[1], filepath, found)
        else:
            model.load_weights(filepath)
    except BaseException:
        for variable, value in zip(model.variables, snapshot):
            variable.assign(value)
        raise


def file_layout(path):
    """{dataset path: shape} of an HDF5 file, e.g.
    {"layers/dense/vars/0": (784, 100), ...}.

    Raises:
        OSError: the file cannot be read as HDF5.
    """
    found = {}
    with h5py.File(path, "r") as f:
        names = []

        def visit(name, info):
            if info.type == h5py.h5o.TYPE_DATASET:
                names.append(name)

        # The low-level visit: 3x faster than `visititems`, which makes an
        # h5py object of every group and dataset.
        h5py.h5o.visit(f.id, visit, info=True)
        for name in names:
            found[name.decode()] = h5py.h5d.open(f.id, name).shape
    return found


def written_layout(model):
    """{dataset path: shape} of the file `model.save_weights` writes, from
    a file it writes to a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "expected" + WEIGHTS_SUFFIX)
        model.save_weights(path)
        return file_layout(path)


def layer_names(model):
    """{file group: layer name}. `.weights.h5` files address a layer by its
    class name and rank among the model's layers ("layers/dense_2" is the
    third Dense), not by its name; this recovers the names for messages."""
    return {group: layer.name for group, layer in zip(_groups(model.layers), model.layers)}


def to_snake_case(name):
    """"BatchNormalization" -> "batch_normalization", as Keras names the
    groups of a weights file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _groups(layers):
    """The file group of each layer: "layers/" + its class in snake case, with
    the rank among layers of that class after the first ("dense_1")."""
    used = {}
    groups = []
    for layer in layers:
        base = to_snake_case(layer.__class__.__name__)
        rank = used.get(base, -1) + 1
        used[base] = rank
        groups.append(f"layers/{base}" + (f"_{rank}" if rank else ""))
    return groups


def _plan(model):
    """({dataset path: shape}, {group: layer}) of `model`, from each layer's
    `save_own_variables`; None when that does not account for every weight
    of the model (sub-layers, nested models: Keras' own walk decides)."""
    saveables = {"": model}
    saveables.update(zip(_groups(model.layers), model.layers))
    expected, recorded = {}, set()
    for group, saveable in saveables.items():
        store = {}
        saveable.save_own_variables(store)
        prefix = f"{group}/vars/" if group else "vars/"
        for key, value in store.items():
            expected[prefix + str(key)] = tuple(value.shape)
            recorded.add(id(value))
    if any(id(v) not in recorded for v in model.weights):
        return None
    return expected, saveables


def _load_planned(saveables, filepath, found):
    """Reads every variable of the planned groups, then hands each layer its
    values (`load_own_variables`): a file that fails to read changes nothing."""
    stores = {group: {} for group in saveables}
    with h5py.File(filepath, "r") as f:
        for path in found:
            group, key = _split(path)
            if group in stores:
                stores[group][key] = _read(f[path])
    for group, saveable in saveables.items():
        saveable.load_own_variables(stores[group])


def _split(path):
    """("layers/dense", "0") of "layers/dense/vars/0"; ("", "0") of "vars/0"."""
    if path.startswith("vars/"):
        return "", path[len("vars/"):]
    group, _, key = path.rpartition("/vars/")
    return group, key


def _read(dataset):
    # As Keras' H5IOStore: bfloat16 is stored as raw 16-bit values with a
    # "dtype" attribute.
    if dataset.attrs.get("dtype") == "bfloat16":
        import ml_dtypes

        return np.array(dataset, dtype=ml_dtypes.bfloat16)
    return np.asarray(dataset[()])


def _layer_of(path):
    # "layers/dense_1/vars/0" -> "layers/dense_1"
    return "/".join(path.split("/")[:2])


def _is_statistics_choice(path, shape, expected):
    """Whether `path` is a bn_zoo BN layer's `use_population_statistics` or
    `moving_statistics_updates`: the two scalar last variables of a
    "batch_normalization*" group. Files written before they existed lack
    them; the layer then keeps its configured choice, and its statistics
    count as caught up."""
    group, _, index = path.rpartition("/vars/")
    if shape != () or not group.rpartition("/")[2].startswith("batch_normalization"):
        return False
    indices = [int(p.rpartition("/")[2]) for p in expected if p.startswith(group + "/vars/")]
    return index.isdigit() and int(index) >= max(indices) - 1


def _structure_problems(expected, found, allow_unused_layers, layer_names):
    def where(path):
        name = layer_names.get(_layer_of(path))
        return f"{path} (layer {name!r})" if name else path

    problems = []
    for path, shape in sorted(expected.items()):
        if path not in found:
            if not _is_statistics_choice(path, shape, expected):
                problems.append(f"missing from the file: {where(path)}, shape {shape}")
        elif found[path] != shape:
            problems.append(
                f"shape mismatch at {where(path)}: model {shape}, file {found[path]}"
            )
    model_layers = {_layer_of(p) for p in expected}
    for path in sorted(set(found) - set(expected)):
        if allow_unused_layers and _layer_of(path) not in model_layers:
            continue
        problems.append(f"not in the model: {path}, shape {found[path]}")
    return problems

