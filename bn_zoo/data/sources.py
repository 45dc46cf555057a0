"""Data sources of the trainer: the registry, and what a source gets.

A data source is a class that `config.data.name` names: one of bn_zoo's
(`mnist`, `mnist_inception`, `imagenet`, `image_folder`, `tfds`), one
registered with `register_data_source`, or an import path
`"package.module:Class"` (the module is imported, which may register it).
Yours never needs an edit of bn_zoo:

    @bn_zoo.register_data_source("my_photos")
    class MyPhotos:
        FIELD_DOCS = {"name": "...", "root": "Where the photos are."}

        @staticmethod
        def default_config():
            return ml_collections.ConfigDict({"name": "my_photos", "root": ""})

        @staticmethod
        def check_config(data):            # a ValueError naming the field
            ...

        def __init__(self, data, preprocess=None, model_input=None):
            self.num_classes = ...
            self.class_names = [...]         # one str per class
        def train_dataset_fn(self, global_batch_size, seed, start_step): ...
        def eval_dataset_fn(self, global_batch_size): ...
        def population_dataset(self, global_batch_size, seed): ...
        def probe_examples(self, num_examples): ...

The interface (`bn_zoo.training.inputs` documents each method) is duck
typed; `missing_members` lists what a class lacks. A source that reads
TFRecord files may also list them (`record_files()`, a
`bn_zoo.data.record_files.RecordFiles`), so a damaged one that stops a run
is named. `model_input` (a
`ModelInput`: the input shape of the model being trained and how its
weights cut images to it) is passed only to a constructor that takes it, as
the trainer passes `seed` only to model builders that take it.

A registered name lives in the process that imported its module: a config
file that imports it (`python -m trainers.train --config=...`) finds it on
every run and resume; the import path works in any process.
"""

import dataclasses
import inspect

from bn_zoo import import_paths

# bn_zoo's own sources; `register_data_source` refuses these names.
BUILTIN_NAMES = ("image_folder", "imagenet", "mnist", "mnist_inception", "tfds")
# What the trainer calls on a source (attributes and methods).
MEMBERS = ("default_config", "check_config", "FIELD_DOCS", "train_dataset_fn",
           "eval_dataset_fn", "population_dataset", "probe_examples")

# The data sources of bn_zoo.data, imported on first use (the training
# layer adds mnist and mnist_inception with `register_builtin`).
_LAZY_BUILTINS = {
    "imagenet": "bn_zoo.data.imagenet:ImageNetInput",
    "image_folder": "bn_zoo.data.image_folder:ImageFolderInput",
    "tfds": "bn_zoo.data.tfds_source:TFDSInput",
}
_SOURCES = {}


@dataclasses.dataclass(frozen=True)
class ModelInput:
    """The input of the model being trained, for sources that size images.

    Attributes:
        image_shape: (height, width, channels) of one input image.
        crop_fraction: Fraction of the image's side the input covers
            (the weights' `DataConfig.crop_fraction`), in (0, 1].
        crop_mode: `"central_fraction"` or `"shorter_side"` (see
            `bn_zoo.data.images.crop_and_resize`).
        interpolation: `tf.image.resize` method.
    """

    image_shape: tuple
    crop_fraction: float = 0.875
    crop_mode: str = "central_fraction"
    interpolation: str = "bilinear"

    def __post_init__(self):
        shape = tuple(self.image_shape)
        if len(shape) != 3 or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape) \
                or shape[-1] not in (1, 3):
            raise ValueError(
                "The model's input must be images, (height, width, channels) with 1 or 3 "
                f"channels, for a source that reads image files. Received: {self.image_shape!r}")
        object.__setattr__(self, "image_shape", shape)
        if not 0.0 < float(self.crop_fraction) <= 1.0:
            raise ValueError(f"`crop_fraction` must be in (0, 1]. Received: {self.crop_fraction!r}")
        if self.crop_mode not in ("central_fraction", "shorter_side"):
            raise ValueError("`crop_mode` must be 'central_fraction' or 'shorter_side'. "
                             f"Received: {self.crop_mode!r}")

    @property
    def image_size(self):
        """(height, width)."""
        return self.image_shape[:2]

    @property
    def channels(self):
        return self.image_shape[2]


def missing_members(cls):
    """The members of the data-source interface that `cls` lacks."""
    return [name for name in MEMBERS if not hasattr(cls, name)]


def register_data_source(name=None):
    """Registers a data source class under `name` (a class decorator).

        @bn_zoo.register_data_source("my_photos")
        class MyPhotos: ...

    Then `config.data.name = "my_photos"` trains on it, in every process
    that imported its module (a config file that imports it is enough). A
    class that is not registered can be named by import path,
    `"package.module:Class"`.

    Args:
        name: The name of `config.data.name`; default: the class name.

    Returns:
        The decorator (the class is returned unchanged).

    Raises:
        ValueError: `name` is one of bn_zoo's own sources, or taken by
            another class; the class lacks a member of the interface.
    """
    if inspect.isclass(name):  # Used as @register_data_source without ().
        return register_data_source()(name)

    def register(cls):
        key = cls.__name__ if name is None else name
        _check_name(key)
        if key in BUILTIN_NAMES:
            raise ValueError(
                f"{key!r} is one of bn_zoo's data sources ({', '.join(BUILTIN_NAMES)}); "
                f"register {cls.__qualname__} under another name.")
        _register(key, cls)
        return cls

    return register


def register_builtin(name, cls):
    """Registers one of bn_zoo's own sources (the training layer's)."""
    if name not in BUILTIN_NAMES:
        raise ValueError(f"{name!r} is not one of bn_zoo's data sources.")
    _register(name, cls)


def _check_name(key):
    if not isinstance(key, str) or not key or ":" in key:
        raise ValueError(
            "A data source's name must be a non-empty string without ':' (that "
            f"form is an import path). Received: {key!r}")


def _register(key, cls):
    if not inspect.isclass(cls):
        raise TypeError(f"A data source must be a class. Received: {cls!r}")
    missing = missing_members(cls)
    if missing:
        raise ValueError(
            f"Data source {cls.__qualname__!r} lacks {', '.join(missing)} of the data "
            "source interface (bn_zoo.training.inputs documents each).")
    previous = _SOURCES.get(key)
    if previous is not None and previous is not cls and not _same_class(previous, cls):
        raise ValueError(
            f"The data source name {key!r} is taken by {previous.__module__}."
            f"{previous.__qualname__}; register {cls.__qualname__} under another name.")
    _SOURCES[key] = cls


def _same_class(a, b):
    """The same class defined twice (a module imported again, e.g. by path)."""
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def names():
    """The names of the data sources known in this process, sorted."""
    return sorted(set(_SOURCES) | set(_LAZY_BUILTINS))


def is_import_path(name):
    return isinstance(name, str) and ":" in name


def get(name):
    """The data source class `name` names (a registered name or an import
    path `"package.module:Class"`).

    Raises:
        ValueError: an unknown name, a module that does not import, or a
            class that lacks a member of the interface.
    """
    if not isinstance(name, str):
        raise ValueError(f"A data source name must be a string. Received: {name!r}")
    if name in _SOURCES:
        return _SOURCES[name]
    if name in _LAZY_BUILTINS:
        cls = import_paths.load(_LAZY_BUILTINS[name], "data source")
        _SOURCES[name] = cls
        return cls
    if is_import_path(name):
        cls = import_paths.load(name, "data source")
        if not inspect.isclass(cls):
            raise ValueError(f"Data source {name!r} is not a class: {cls!r}.")
        missing = missing_members(cls)
        if missing:
            raise ValueError(
                f"Data source {name!r} lacks {', '.join(missing)} of the data source "
                "interface (bn_zoo.training.inputs documents each).")
        return cls
    raise ValueError(
        f"Unknown data source {name!r}. Known: {', '.join(names())}. A source of your "
        "own: register it with @bn_zoo.register_data_source (in a module the config "
        "file imports) or name it by import path, 'package.module:Class'.")


def takes_model_input(cls):
    """Whether `cls(data, preprocess, model_input=...)` is accepted."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return "model_input" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
