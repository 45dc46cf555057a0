"""A fresh run's initial weights (`config.model.weights`), loaded layer by layer.

    config.model.weights = "imagenet"                # registered weights of the model
    config.model.weights = "/data/backbone.weights.h5"
    config.model.weights = "/data/model.keras"
    config.model.weights = "workdirs/pretrain"       # its newest readable checkpoint

Every source becomes a Keras `.weights.h5` layout: a registered name is the
file the zoo fetches (and converts) into the Keras cache
(`bn_zoo.models.hub`), a `.keras` file holds one (`model.weights.h5`), and a
workdir's model is restored (`bn_zoo.runs.restore`) and written to one.

The file is matched against the model as Keras' `load_weights` matches it:
a layer's variables live in the group named after its class and its rank
among the layers of that class (`layers/conv2d_3/vars/0`), nested models
in their own `layers/`. A layer whose group is in the file with variables of
the same shapes is loaded (with the layer's own `load_own_variables`, so a
bn_zoo BN layer also reads Keras' 4-variable layout); any other layer keeps
its fresh initialization and is reported as new: a classifier of another
class count is the usual one. A file in which no layer matches is refused.

Before any variable is set, the file is checked as `bn_zoo.create_model`
checks one (`bn_zoo.models.weights_files`): a `.weights.h5` or `.keras` file
with a checksum file beside it (`<file>.sha256`, which bn_zoo writes beside
its own weights files) must match it, and no source may hold NaN or Inf. A
refused source is a `ConfigError` naming the file (and the variables), and
the model is left as it was.

The BN layers then train and evaluate with their moving averages
(`use_population_statistics` is cleared): a run's metrics are labelled with
the statistics they use (`bn_zoo.training.loop`).
"""

import dataclasses
import os
import tempfile
import zipfile

import h5py
import keras
import numpy as np

from bn_zoo import population, runs
from bn_zoo.models import catalogue, hub, weights_files
from bn_zoo.training.errors import ConfigError

KERAS_ARCHIVE_WEIGHTS = "model.weights.h5"  # The weights inside a `.keras` zip.


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What `load` did.

    Attributes:
        source: The weights as the config names them, and what they were.
        file: The `.weights.h5` layout read (a temporary file for a `.keras`
            archive or a workdir: then None).
        loaded: Paths (`variable.path`) of the model's variables set from it.
        new: `(path, shape)` of the variables that kept their initialization.
        unused: Groups of the file that no layer of the model took.
        reset_statistics: Names of the BN layers whose inference choice was
            population statistics and is now the moving averages.
    """

    source: str
    file: str
    loaded: tuple
    new: tuple
    unused: tuple
    reset_statistics: tuple

    def summary(self, limit=6):
        """One line: counts, and the new variables' names (the first few)."""
        total = len(self.loaded) + len(self.new)
        line = f"Loaded {len(self.loaded)} of {total} variables from {self.source}"
        if self.new:
            names = ", ".join(f"{path} {tuple(shape)}" for path, shape in self.new[:limit])
            more = f", ... ({len(self.new) - limit} more)" if len(self.new) > limit else ""
            line += f"; {len(self.new)} new (initialized afresh): {names}{more}"
        else:
            line += "; none new"
        if self.unused:
            more = ", ..." if len(self.unused) > 3 else ""
            line += (f"; {len(self.unused)} layer(s) of the file unused: "
                     f"{', '.join(self.unused[:3])}{more}")
        return line + "."


def load(model, model_name, weights):
    """Loads `weights` (a `config.model.weights` value) into `model`.

    Args:
        model: The freshly built model of the run.
        model_name: `config.model.name` (for registered weights).
        weights: A registered name of `model_name`, the path of a
            `.weights.h5` or `.keras` file, or a trainer workdir.

    Returns:
        A `Loaded`.

    Raises:
        ConfigError: `weights` names nothing that exists, a file that cannot
            be read, fails its checksum file or holds NaN or Inf, or one in
            which no layer matches the model. The model is left as it was.
    """
    info = catalogue.model_info(model_name)
    with tempfile.TemporaryDirectory(prefix="bn_zoo_weights_") as scratch:
        path, source = _weights_file(info, weights, scratch)
        loaded = _load_matching(model, path, source)
    reset = tuple(layer.name for layer in population.batch_normalization_layers(model)
                  if layer.inference_statistics == "population")
    if reset:
        population.set_inference_statistics(model, "moving")
    return dataclasses.replace(loaded, file=path if path == weights else None,
                               reset_statistics=reset)


def _weights_file(info, weights, scratch):
    """(path of a `.weights.h5` layout, description) of `weights`."""
    if weights in info.weights:
        registered = info.weights[weights]
        try:
            if registered.release is not None:
                path = hub.fetch_converted(info.name, weights)
            else:
                path = hub.fetch(info.name, weights)
        except (OSError, ValueError, ImportError) as error:  # No network, a bad file, no torch.
            raise ConfigError(f"config.model.weights={weights!r}: the registered weights of "
                              f"{info.name!r} could not be fetched: {error}") from error
        return path, f"the registered weights {weights!r} of {info.name!r} ({path})"
    path = os.fspath(weights)
    if os.path.isdir(path):
        return _from_workdir(path, scratch), f"the workdir {path}"
    if not os.path.isfile(path):
        names = ", ".join(sorted(info.weights)) or "none registered"
        raise ConfigError(
            f"config.model.weights={weights!r} is neither a registered weights name of "
            f"{info.name!r} ({names}) nor an existing file or trainer workdir. Pass one of "
            f"those names, a '*{weights_files.WEIGHTS_SUFFIX}' or '*.keras' file, or a "
            "--workdir of trainers.train.")
    if not path.endswith((".keras", weights_files.WEIGHTS_SUFFIX)):
        raise ConfigError(
            f"config.model.weights={path!r} is not a '*{weights_files.WEIGHTS_SUFFIX}' or "
            "'*.keras' file (Keras' formats, as model.save_weights and model.save write "
            "them). Convert it, or pass a registered name or a workdir.")
    try:
        weights_files.verify_checksum(path)
    except weights_files.CorruptWeightsError as error:
        raise ConfigError(f"config.model.weights={path!r}: {error}") from error
    if path.endswith(".keras"):
        return _from_keras_archive(path, scratch), f"{path}"
    return path, path


def _from_keras_archive(path, scratch):
    try:
        with zipfile.ZipFile(path) as archive:
            if KERAS_ARCHIVE_WEIGHTS not in archive.namelist():
                raise ConfigError(
                    f"config.model.weights={path!r} is a zip file without "
                    f"{KERAS_ARCHIVE_WEIGHTS}: not a Keras 3 '.keras' model. Save it with "
                    "model.save(path) (or pass a .weights.h5 file).")
            return archive.extract(KERAS_ARCHIVE_WEIGHTS, scratch)
    except (zipfile.BadZipFile, OSError) as error:
        raise ConfigError(f"config.model.weights={path!r} cannot be read as a '.keras' "
                          f"file ({error}). It may be truncated or corrupted.") from error


def _from_workdir(path, scratch):
    try:
        restored = runs.restore(path, classifier_activation=None)
    except runs.WorkdirError as error:
        raise ConfigError(f"config.model.weights={path!r}: {error}") from error
    target = os.path.join(scratch, "workdir" + weights_files.WEIGHTS_SUFFIX)
    restored.model.save_weights(target)
    return target


def groups(model, prefix=""):
    """`{file group: layer}` of every layer of `model` that holds variables
    of its own, nested models followed into their `layers/`: where
    `model.save_weights` writes each layer's variables."""
    found = {}
    own = {}
    model.save_own_variables(own)
    if own:
        found[prefix.rstrip("/")] = model
    for group, layer in zip(_groups(model.layers), model.layers):
        if isinstance(layer, keras.Model):
            found.update(groups(layer, f"{prefix}{group}/"))
        else:
            store = {}
            layer.save_own_variables(store)
            if store:
                found[f"{prefix}{group}"] = layer
    return found


def _groups(layers):
    """"layers/" + each layer's class in snake case, with its rank among the
    layers of that class after the first (Keras' naming in weights files)."""
    used = {}
    names = []
    for layer in layers:
        base = weights_files.to_snake_case(layer.__class__.__name__)
        rank = used.get(base, -1) + 1
        used[base] = rank
        names.append(f"layers/{base}" + (f"_{rank}" if rank else ""))
    return names


def _store(layer):
    store = {}
    layer.save_own_variables(store)
    return store


def _load_matching(model, path, source):
    try:
        found = weights_files.file_layout(path)
    except OSError as error:
        raise ConfigError(f"config.model.weights: cannot read {source} as a Keras "
                          f"'*{weights_files.WEIGHTS_SUFFIX}' file ({error}). It may be "
                          "truncated or corrupted.") from error
    try:
        weights_files.check_finite(path, weights_files.variable_names(model), source)
    except weights_files.CorruptWeightsError as error:
        raise ConfigError(f"config.model.weights: {error}") from error
    by_group = {}
    for dataset, shape in found.items():
        group, _, key = dataset.rpartition("/vars/") if "/vars/" in dataset else (
            "", "", dataset[len("vars/"):])
        by_group.setdefault(group, {})[key] = shape
    targets = groups(model)
    covered = {id(v) for layer in targets.values() for v in _store(layer).values()}
    if any(id(v) not in covered for v in model.weights):
        return _load_with_keras(model, path, source)
    snapshot = [np.array(v) for v in model.weights]
    loaded, new, taken = [], [], set()
    try:
        with h5py.File(path, "r") as f:
            for group, layer in targets.items():
                variables = _store(layer)
                in_file = by_group.get(group)
                if in_file is not None and _try_load(layer, variables, in_file, f, group):
                    loaded.extend(v.path for v in variables.values())
                    taken.add(group)
                else:
                    new.extend((v.path, tuple(v.shape)) for v in variables.values())
    except BaseException:
        for variable, value in zip(model.weights, snapshot):
            variable.assign(value)
        raise
    if not loaded:
        raise ConfigError(
            f"config.model.weights: no layer of model {model.name!r} matches {source}: "
            f"its {len(by_group)} layer(s) ({_preview(sorted(by_group))}) have other "
            "classes or shapes. Build the network that wrote the file (config.model.name "
            "and kwargs: depth_multiplier, variant, ...), or start from other weights.")
    unused = tuple(sorted(set(by_group) - taken))
    return Loaded(source, path, tuple(loaded), tuple(new), unused, ())


def _preview(names, count=3):
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


def _try_load(layer, variables, in_file, f, group):
    """Loads `layer` from the file's `group` if its variables fit: the same
    keys and shapes, or a layout the layer's own loader reads (bn_zoo's BN:
    Keras' 4 variables, files without its last two). Returns whether it did;
    a layer that fails to load is restored."""
    same = set(in_file) == set(variables) and all(
        tuple(in_file[k]) == tuple(v.shape) for k, v in variables.items())
    from bn_zoo.layers import BatchNormalization

    if not same and not isinstance(layer, BatchNormalization):
        return False
    store = {key: _read(f[f"{group}/vars/{key}" if group else f"vars/{key}"])
             for key in in_file}
    before = [np.array(v) for v in variables.values()]
    try:
        layer.load_own_variables(store)
    except (ValueError, KeyError, TypeError):
        for variable, value in zip(variables.values(), before):
            variable.assign(value)
        return False
    return True


def _read(dataset):
    if dataset.attrs.get("dtype") == "bfloat16":
        import ml_dtypes

        return np.array(dataset, dtype=ml_dtypes.bfloat16)
    return np.asarray(dataset[()])


def _load_with_keras(model, path, source):
    """Layers with sub-layers of their own (not nested models): Keras' own
    walk, `load_weights(skip_mismatch=True)`, decides; a variable counts as
    loaded if its value changed (one the file sets to its initial value is
    reported as new)."""
    before = [np.array(v) for v in model.weights]
    try:
        model.load_weights(path, skip_mismatch=True)
    except (ValueError, OSError) as error:
        raise ConfigError(f"config.model.weights: {source} does not fit model "
                          f"{model.name!r}: {error}") from error
    loaded, new = [], []
    for variable, old in zip(model.weights, before):
        if np.array_equal(np.array(variable), old):
            new.append((variable.path, tuple(variable.shape)))
        else:
            loaded.append(variable.path)
    if not loaded:
        raise ConfigError(
            f"config.model.weights: no layer of model {model.name!r} matches {source}. "
            "Build the network that wrote the file, or start from other weights.")
    return Loaded(source, path, tuple(loaded), tuple(new), (), ())
