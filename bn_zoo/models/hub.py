"""The zoo's hub: builds a catalogued model and loads its `weights=`, once.

`create_model(name, weights=..., **kwargs)` looks the model up in the
catalogue, resolves `weights=` once, checks it against the arguments before
anything is built or fetched, builds the network with the model's builder,
and loads the file once:

- None: random weights.
- A path to a `.weights.h5` file: loaded as is (`weights_files.load_weights`,
  all or nothing), after its checks: the checksum file `<file>.sha256` that
  bn_zoo writes beside its own weights files, if there is one, and no NaN or
  Inf (`weights_files.CorruptWeightsError` otherwise, nothing loaded).
- A registered name (`model_info(name).weights`): a ready file is fetched with
  `keras.utils.get_file` into the Keras cache and verified by sha256, so a
  file that is corrupted, truncated or replaced is refused; a public release
  (`release="slim"` or `"caffe_torch"`) is fetched once into
  `<keras cache>/models/bn_zoo/releases/`, verified as far as the release
  allows, converted (`bn_zoo.models.releases`) and cached atomically as
  `<keras cache>/models/bn_zoo/<model>_<weights>_<classes>.weights.h5`, with
  its checksum file, verified at every use. A
  release that fails verification or conversion is deleted, so no cache
  entry is left and the next call fetches again.

The data the weights expect (input size, crop, interpolation, scaling,
label set) is their `DataConfig`, `catalogue.data_config(name, weights)`;
`include_preprocessing=True` takes its scaling from there.

BN layers then use, in this order of precedence: the `inference_statistics`
of `batch_norm_kwargs`, the one of the registered weights, the one the file
carries (files written before bn_zoo saved the choice carry none, and the
layers keep their configured one).
"""

import os
import re

import keras
from keras import activations

from bn_zoo import population
from bn_zoo.models import catalogue, download_errors, releases, weights_files

# Keras cache directory of the zoo's files; None: $KERAS_HOME, else ~/.keras
# (as keras.utils.get_file). Tests point it at a temporary directory.
CACHE_DIR = None
CACHE_SUBDIR = "models/bn_zoo"
RELEASES_SUBDIR = CACHE_SUBDIR + "/releases"
_HASH_PREFIX = re.compile(r"-([a-f0-9]{6,64})\.")


def create_model(name, /, **kwargs):
    """Builds the catalogued model `name` (or the builder at import path
    `"package.module:function"`, see `register_model`).

    Keyword arguments go to its builder: the keras.applications arguments
    (`include_top`, `weights`, `input_tensor`, `input_shape`, `pooling`,
    `classes`, `classifier_activation`, `name`) plus `batch_norm_kwargs` and
    the family's own (`hidden_units`, `init_stddev`, `seed` for the MLPs;
    `depth_multiplier`, `stem`, `dropout_rate`, `lrn`, `seed`, `activation`,
    `variant`, `features`, `include_preprocessing` for Inception).

    Raises:
        ValueError, TypeError: an unknown model; `weights` that are neither
            None, a registered name nor an existing `.weights.h5` file, or
            that do not fit the other arguments (refused before anything is
            built or fetched); arguments the builder refuses.
        FileNotFoundError: a `.weights.h5` path that does not exist.
    """
    info = catalogue.model_info(name)
    builder = info.factory
    weights = kwargs.pop("weights", None)
    if builder.loads_weights:  # A builder of your own that loads them itself.
        return builder(weights=weights, **kwargs)
    features = kwargs.pop("features", None) if builder.features else None
    arguments = builder.arguments(kwargs)
    registered = _check_weights(info, weights, arguments)
    if registered is not None:
        kwargs = _with_weights_arguments(info.name, weights, registered, arguments, kwargs)
        if registered.preprocessing and builder.takes("preprocessing"):
            # The in-model scaling (include_preprocessing=True): the data config's.
            kwargs["preprocessing"] = catalogue.data_config(info.name, weights).preprocessing
        arguments = builder.arguments(kwargs)
    names = builder.features.names(features, **arguments) if features is not None else ()
    model = builder(**kwargs)
    if weights is not None:
        include_top = arguments.get("include_top", True)
        path = _weights_path(info, weights, registered, arguments["classes"] if include_top
                             and "classes" in arguments else None)
        weights_files.load_weights(model, path, allow_unused_layers=not include_top)
        statistics = (arguments.get("batch_norm_kwargs") or {}).get("inference_statistics")
        if statistics is None and registered is not None:
            statistics = registered.inference_statistics
        if statistics is not None:
            population.set_inference_statistics(model, statistics)
    return builder.features.model(model, names, **arguments) if names else model


def cache_dir():
    """The Keras cache directory the zoo's files go to: `CACHE_DIR`, else
    `$KERAS_HOME`, else `~/.keras` (`/tmp/.keras` if the home directory is
    not writable), as `keras.utils.get_file` chooses."""
    if CACHE_DIR is not None:
        return os.path.expanduser(CACHE_DIR)
    if "KERAS_HOME" in os.environ:
        return os.path.expanduser(os.environ["KERAS_HOME"])
    home = os.path.expanduser("~")
    return os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")


def fetch(model_name, weights_name):
    """Local path of a registered `.weights.h5` file, fetched into the Keras
    cache and verified by sha256.

    Raises:
        ValueError: the file fails the sha256 check (it was not loaded).
    """
    entry = catalogue.weights_of(model_name)[weights_name]
    try:
        return _get_file(entry, CACHE_SUBDIR, file_hash=entry.sha256, hash_algorithm="sha256")
    except ValueError as error:
        if "hash" not in str(error):
            raise
        raise ValueError(
            f"The registered weights {weights_name!r} of {model_name!r} failed "
            f"the sha256 check: {entry.origin} does not have the registered "
            f"hash {entry.sha256}, so the file is corrupted or not the one that "
            "was registered. It was not loaded. Restore the file (or update the "
            "hash in bn_zoo/models/zoo.py if the new file is intended)."
        ) from error


def fetch_release(model_name, weights_name):
    """Local path of a registered release file, fetched into the Keras cache."""
    entry = catalogue.weights_of(model_name)[weights_name]
    return _get_file(entry, RELEASES_SUBDIR)


def converted_path(model_name, weights_name, classes, directory=None):
    """Where the converted weights of a registered release are cached: in
    `directory`, default `<cache_dir()>/models/bn_zoo`."""
    directory = directory or os.path.join(cache_dir(), CACHE_SUBDIR)
    return os.path.join(directory, f"{model_name}_{weights_name}_{classes}{weights_files.WEIGHTS_SUFFIX}")


def verify_hash_prefix(path):
    """Checks a file named like `name-<hex>.ext` against its sha256 prefix
    (torch.hub's convention); files without one pass.

    Raises:
        ConversionError: the sha256 does not start with the prefix.
    """
    match = _HASH_PREFIX.search(os.path.basename(path))
    if match is None:
        return
    digest = weights_files.sha256_of(path)
    if not digest.startswith(match.group(1)):
        raise releases.ConversionError(
            f"{path} has sha256 {digest[:16]}..., but its name says it starts with "
            f"{match.group(1)}: the download is truncated or corrupted."
        )


def fetch_converted(model_name, weights_name, classes=None):
    """Path of the converted `.weights.h5` of a registered release (see the
    module docstring); converts on first use.

    `classes=None` is for a model without the classifier: any converted file
    in the cache serves, else the registered class count is converted.

    Raises:
        CorruptWeightsError: (a ValueError) the cached conversion fails its
            checksum file.
        ConversionError: (a ValueError) the release failed verification or
            conversion; the download was deleted. Other errors (no PyTorch,
            no network) keep a verified download for the next call.
    """
    entry = catalogue.weights_of(model_name)[weights_name]
    if classes is None:
        for accepted in entry.accepted_classes:
            if os.path.isfile(converted_path(model_name, weights_name, accepted)):
                return _verified_conversion(converted_path(model_name, weights_name, accepted))
        classes = entry.classes
    target = converted_path(model_name, weights_name, classes)
    if os.path.isfile(target):
        return _verified_conversion(target)
    release = fetch_release(model_name, weights_name)
    # Beside the release's parent folder, wherever get_file put it.
    target = converted_path(model_name, weights_name, classes,
                            os.path.dirname(os.path.dirname(release)))
    try:
        verify_hash_prefix(release)
        model = releases.converter(entry.release)(release, classes=classes)
        weights_files.save_weights_atomically(model, target)
    except releases.ConversionError as error:
        if os.path.exists(release):
            os.remove(release)
        raise releases.ConversionError(
            f"The registered weights {weights_name!r} of {model_name!r} "
            f"({entry.origin}) were not loaded: {error} The downloaded file "
            "was deleted; the next call downloads it again."
        ) from error
    return target


def _verified_conversion(path):
    """A converted release in the cache, checked against its checksum file.

    Raises:
        CorruptWeightsError: it fails the check (it is left for you to delete).
    """
    sidecar = weights_files.checksum_path(path)
    weights_files.verify_checksum(
        path, fix=f"Delete it and {os.path.basename(sidecar)} beside it: the next call "
        "converts the release again.")
    return path


def _get_file(entry, subdir, **kwargs):
    base = cache_dir()
    # get_file falls back to /tmp/.keras when the directory is missing.
    os.makedirs(base, exist_ok=True)
    # A shipped file (file://) is only copied into the cache: no "Downloading
    # data from" line and progress bar on stdout (Keras logs them instead).
    local = entry.origin.startswith("file://") and keras.config.is_interactive_logging_enabled()
    if local:
        keras.config.disable_interactive_logging()
    try:
        return keras.utils.get_file(
            fname=entry.file_name, origin=entry.origin, cache_subdir=subdir, cache_dir=base,
            **kwargs)
    except Exception as error:  # get_file raises a bare Exception for a failed download.
        if not download_errors.is_download_failure(error):
            raise
        raise download_errors.download_error(
            entry, os.path.join(base, subdir, entry.file_name), error) from error
    finally:
        if local:
            keras.config.enable_interactive_logging()


def _check_weights(info, weights, arguments):
    """Checks `weights=` the way `keras.applications` does, before building:
    the `RegisteredWeights` it names, or None for a file (or None)."""
    if weights is None:
        return None
    known = info.weights
    include_top = arguments.get("include_top", True) is True
    registered = None
    if isinstance(weights, str) and weights in known:
        registered = known[weights]
        classes = arguments.get("classes")
        if include_top and classes not in registered.accepted_classes:
            accepted = " or ".join(str(c) for c in registered.accepted_classes)
            raise ValueError(
                f"The registered weights {weights!r} of {info.name!r} have a "
                f"{registered.classes}-way classifier, so with `include_top=True` "
                f"`classes` must be {accepted}. Received: classes={classes}. "
                "Use include_top=False to put your own classifier on top."
            )
    elif isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(
            weights_files.WEIGHTS_SUFFIX):
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"The weights file {os.fspath(weights)!r} does not exist. Pass an existing "
                f"'*{weights_files.WEIGHTS_SUFFIX}' file, a registered name, or None."
            )
    else:
        names = sorted(known) or "none registered"
        raise ValueError(
            "The `weights` argument should be None (random initialization), a "
            f"registered name of {info.name!r} ({names}), or the path to an "
            f"existing '*{weights_files.WEIGHTS_SUFFIX}' file (as written by "
            f"`model.save_weights`). Received: weights={weights!r}"
        )
    if include_top and "classifier_activation" in arguments:
        _check_pretrained_activation(arguments["classifier_activation"])
    return registered


def _check_pretrained_activation(classifier_activation):
    """Pretrained classifiers give probabilities or logits, nothing else (as
    keras.applications)."""
    try:
        activation = activations.get(classifier_activation)
    except ValueError:
        return  # Not an activation at all: the builder says so.
    if activation not in (activations.get("softmax"), activations.get(None)):
        raise ValueError(
            "Only `None` and `softmax` activations are allowed for the "
            "`classifier_activation` argument when using pretrained weights, with "
            f"`include_top=True`; Received: classifier_activation={classifier_activation!r}"
        )


def _with_weights_arguments(model_name, weights, registered, arguments, kwargs):
    """`kwargs` with the builder arguments registered weights need; refuses
    arguments that would build another network than they fit."""
    for key, needed in registered.model_kwargs.items():
        value = arguments.get(key)
        if value is not None and value != needed:
            raise ValueError(
                f"The weights {weights!r} of {model_name!r} fit the network "
                f"built with {key}={needed!r}. Received: {key}={value!r}. Leave "
                f"`{key}` unset to load them, or use weights=None to build the "
                "other network."
            )
    given = arguments.get("batch_norm_kwargs")
    for key, needed in registered.batch_norm_kwargs.items():
        if isinstance(given, dict) and key in given and given[key] != needed:
            raise ValueError(
                f"The weights {weights!r} of {model_name!r} need BN {key}={needed!r}. "
                f"Received: batch_norm_kwargs={{{key!r}: {given[key]!r}}}. Leave "
                f"`{key}` out of batch_norm_kwargs."
            )
    return {**kwargs, **registered.model_kwargs}


def _weights_path(info, weights, registered, classes):
    """The local `.weights.h5` file of `weights`: the path itself, or the
    registered file fetched (and, for a release, converted) into the cache."""
    if registered is None:
        return os.fspath(weights)
    if registered.release is not None:
        return fetch_converted(info.name, weights, classes)
    return fetch(info.name, weights)
