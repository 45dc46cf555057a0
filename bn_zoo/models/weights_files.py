"""Keras `.weights.h5` files, read all or nothing and written atomically.

`load_weights(model, path)` checks the file's variables against the model's
before it changes anything: every variable the model has must be in the
file with the same shape, and the file must have nothing else. It reads the
layout Keras would write without writing it: each layer's
`save_own_variables` lists its variables, at the group Keras gives the layer
(`layers/<class name in snake case>[_<rank>]/vars/<index>`). Where that
cannot account for every weight of the model (nested models, layers with
sub-layers), it asks Keras itself, through a temporary file.

Integrity, checked before anything is assigned (a refused file changes
nothing):

- The checksum file `<file>.sha256` beside a weights file, one line in
  `sha256sum`'s format (`<64 hex digits>  <file name>`, so `cd DIR &&
  sha256sum -c FILE.sha256` checks it too). `save_weights_atomically`, which
  writes every weights file bn_zoo makes (`trainers.convert`, the converted
  releases in the Keras cache, `bn_zoo.runs.save_weights` and
  `trainers.figure1 --weights_dir`), writes it after the weights file, atomically;
  the shipped files in `bn_zoo/weights/` carry one. A digest that differs
  is refused (`CorruptWeightsError`: the file, both digests, the fix). No
  checksum file (a file of your own `model.save_weights`): the file loads
  unverified. Only the digest is compared; the file name on the line is
  for `sha256sum -c`.
- Every value: NaN or Inf anywhere in the file is refused
  (`CorruptWeightsError` naming the file and the variables), checksum or
  not. A flipped exponent bit can also make a value huge but finite
  (-1.8e37): only the checksum catches that.
"""

import hashlib
import os
import re
import tempfile
import uuid

import h5py
import numpy as np

from bn_zoo import atomic_files

WEIGHTS_SUFFIX = ".weights.h5"
CHECKSUM_SUFFIX = ".sha256"  # `<weights file>.sha256`, in sha256sum's format.
_CHECKSUM_LINE = re.compile(r"^\\?([0-9a-fA-F]{64})(?:\s|$)")


class CorruptWeightsError(ValueError):
    """A weights file that fails its checksum file (`<file>.sha256`), or
    holds NaN or Inf. Nothing was loaded from it."""


def sha256_of(path):
    """The sha256 hex digest of a file (what `RegisteredWeights` records)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_path(path):
    """The checksum file of weights file `path`: `<path>.sha256`."""
    return os.fspath(path) + CHECKSUM_SUFFIX


def save_weights_atomically(model, path):
    """`model.save_weights(path)`, atomically, and its checksum file.

    The weights go to a hidden partial file beside `path`, renamed over it,
    so `path` is never half-written; then `<path>.sha256` is written
    (`write_checksum`). An older checksum file is removed first, so a
    process killed in between leaves a file without one (it loads
    unverified), never one that contradicts it. A failure leaves neither
    file behind. Creates the directory if needed.
    """
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f".{uuid.uuid4().hex}.partial{WEIGHTS_SUFFIX}")
    try:
        model.save_weights(partial)
        digest = sha256_of(partial)
        if os.path.lexists(checksum_path(path)):
            os.remove(checksum_path(path))
        os.replace(partial, path)
        try:
            write_checksum(path, digest)
        except BaseException:
            os.remove(path)
            raise
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def write_checksum(path, digest=None):
    """Writes `<path>.sha256`, `"<sha256 of path>  <file name>\\n"` (the
    line `sha256sum` prints), atomically (`bn_zoo.atomic_files`). `digest`:
    the file's sha256 if already known."""
    path = os.path.abspath(os.fspath(path))
    digest = digest or sha256_of(path)
    atomic_files.atomic_write(checksum_path(path), f"{digest}  {os.path.basename(path)}\n")


def verify_checksum(path, fix=None):
    """Checks a file against its checksum file `<path>.sha256`, if any.

    Args:
        path: A weights file (or any file: a `.keras` archive, say).
        fix: What to do about a mismatch; default: get the file again, or
            delete the checksum file if the file was changed on purpose.

    Returns:
        The verified sha256 hex digest, or None without a checksum file.

    Raises:
        CorruptWeightsError: the file's sha256 differs from the recorded
            one, or the checksum file holds no sha256 line.
    """
    path = os.fspath(path)
    sidecar = checksum_path(path)
    try:
        with open(sidecar) as f:
            text = f.read(4096)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise CorruptWeightsError(
            f"Cannot read the checksum file {sidecar!r} of {path!r} ({error}); nothing was "
            f"loaded. Delete it (or rewrite it: sha256sum FILE > FILE{CHECKSUM_SUFFIX}).") \
            from error
    match = _CHECKSUM_LINE.match(text.strip())
    if match is None:
        raise CorruptWeightsError(
            f"The checksum file {sidecar!r} of {path!r} holds no sha256 line "
            f"('<64 hex digits>  <file name>'); nothing was loaded. Delete it (or rewrite "
            f"it: sha256sum FILE > FILE{CHECKSUM_SUFFIX}).")
    expected = match.group(1).lower()
    actual = sha256_of(path)
    if actual != expected:
        fix = fix or ("Download, convert or export it again; if you changed it on purpose, "
                      f"delete {sidecar!r}.")
        raise CorruptWeightsError(
            f"The weights file {path!r} fails its sha256 check, so nothing was loaded: "
            f"{os.path.basename(sidecar)} records {expected}, the file has {actual}. It was "
            f"corrupted or changed after it was written. {fix}")
    return actual


def check_finite(path, variables=None, source=None):
    """Refuses a file that holds NaN or Inf in any floating-point dataset.

    Args:
        path: An HDF5 weights file.
        variables: {dataset path: variable name} for the message (see
            `variable_names`); datasets without one are named by path.
        source: How to name the file in the message; default its path.

    Raises:
        CorruptWeightsError: naming the file and each dataset with NaN or
            Inf (the first three), with their counts.
        OSError: the file cannot be read as HDF5.
    """
    with h5py.File(path, "r") as f:
        _refuse_non_finite({name: _read(f[name]) for name in _datasets(f)}, path,
                           variables, source)


def _refuse_non_finite(values_by_name, path, variables=None, source=None):
    """`check_finite` on values already read: {dataset path: array}."""
    variables = variables or {}
    bad = []
    for name, values in values_by_name.items():
        if values.dtype.kind != "f" and values.dtype.name != "bfloat16":
            continue
        values = values.astype(np.float32) if values.dtype.kind != "f" else values
        if np.isfinite(values).all():  # One pass; counted only when refused.
            continue
        nan = int(np.count_nonzero(np.isnan(values)))
        inf = int(np.count_nonzero(np.isinf(values)))
        where = f"{name} (variable {variables[name]!r})" if name in variables else name
        counts = " and ".join(f"{n} {kind}" for n, kind in ((nan, "NaN"), (inf, "Inf")) if n)
        bad.append(f"{where} has {counts} of {values.size} values")
    if bad:
        more = f"; and {len(bad) - 3} more variables" if len(bad) > 3 else ""
        source = source or f"the weights file {os.fspath(path)!r}"
        raise CorruptWeightsError(
            f"Non-finite values (NaN or Inf) in {source}, so nothing was loaded: "
            f"{'; '.join(bad[:3])}{more}. The file is corrupted or was "
            f"saved from a model whose training diverged: download, convert or export it "
            "again, or use other weights.")


def variable_names(model, prefix=""):
    """{dataset path in a weights file: variable path} of `model`'s own
    variables and its layers', nested models followed into their `layers/`
    (`"layers/dense/vars/0": "dense/kernel"`). Variables of a layer's
    sub-layers are left out."""
    import keras

    names = {}
    for group, saveable in [("", model)] + list(zip(_groups(model.layers), model.layers)):
        if group and isinstance(saveable, keras.Model):
            names.update(variable_names(saveable, f"{prefix}{group}/"))
            continue
        store = {}
        saveable.save_own_variables(store)
        for key, value in store.items():
            name = getattr(value, "path", None)
            if name is not None:
                names[f"{prefix}{group}/vars/{key}" if group else f"{prefix}vars/{key}"] = name
    return names


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

    Before that, integrity (see the module docstring): the checksum file
    `<filepath>.sha256` if there is one, and no NaN or Inf anywhere.

    Args:
        model: A built Keras model.
        filepath: Path to a `*.weights.h5` file.
        allow_unused_layers: Accept layers in the file that the model lacks.

    Raises:
        CorruptWeightsError: (a ValueError) the file fails its checksum file
            or holds NaN or Inf.
        ValueError: the file cannot be read, or does not fit the model.
    """
    filepath = os.fspath(filepath)
    verify_checksum(filepath)
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
            _load_planned(plan[1], filepath, found, variable_names(model))
        else:
            check_finite(filepath, variable_names(model))
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
    with h5py.File(path, "r") as f:
        return {name: h5py.h5d.open(f.id, name.encode()).shape for name in _datasets(f)}


def _datasets(f):
    """The dataset paths of open HDF5 file `f`, as str."""
    names = []

    def visit(name, info):
        if info.type == h5py.h5o.TYPE_DATASET:
            names.append(name.decode())

    # The low-level visit: 3x faster than `visititems`, which makes an
    # h5py object of every group and dataset.
    h5py.h5o.visit(f.id, visit, info=True)
    return names


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


def _load_planned(saveables, filepath, found, variables):
    """Reads every dataset of the file, refuses NaN and Inf in any of them
    (`check_finite`, named by `variables`), then hands each planned layer its
    values (`load_own_variables`): a file that fails to read or to pass
    changes nothing."""
    with h5py.File(filepath, "r") as f:
        values = {path: _read(f[path]) for path in found}
    _refuse_non_finite(values, filepath, variables)
    stores = {group: {} for group in saveables}
    for path, value in values.items():
        group, key = _split(path)
        if group in stores:
            stores[group][key] = value
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

