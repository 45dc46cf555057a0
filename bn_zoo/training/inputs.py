"""The trainer's data sources, behind one small interface.

`config.data.name` picks a source: one of bn_zoo's (`mnist`,
`mnist_inception`, `imagenet`, `image_folder`, `tfds`), one registered with
`bn_zoo.register_data_source`, or an import path `"package.module:Class"`
(`bn_zoo.data.sources`). The class provides

    default_config()              the fields of config.data, with defaults
    FIELD_DOCS                    what each of those fields means
    check_config(data)            raises ValueError (or ConfigError) on a bad value
    Input(data, preprocess[, model_input])
                                  loads or validates the data (DataError if missing
                                  or unreadable), before anything is written
    .num_classes
    .class_names                  one str per class (the trainer records them)
    .train_dataset_fn(global_batch_size, seed, start_step)
        -> fn(input_context) for `distribute_datasets_from_function`: endless
           per-replica (images, labels), starting at global step `start_step`:
           the batches an uninterrupted run reads from that step on
    .eval_dataset_fn(global_batch_size)
        -> fn(input_context): the evaluation split once, per-replica
           (images, labels) or (images, labels, weights)
    .population_dataset(global_batch_size, seed)
        -> global training batches (images, labels) for Algorithm 2
    .probe_examples(num_examples) -> a fixed batch of evaluation images
    .record_files()               optional: the TFRecord files the pipelines read
                                  (a `bn_zoo.data.record_files.RecordFiles`), so a
                                  damaged one met mid-run is named

`preprocess` maps a batch of images with values in [0, 255] to the model's
input (the `preprocess_input` mode of the model and its weights).
`model_input` (`bn_zoo.data.sources.ModelInput`: the model's input shape,
and the crop fraction, crop mode and interpolation of its weights' data
config) is passed to sources whose constructor takes it: the image sources
cut their images to it. `check_config` may raise a plain ValueError naming
the field: it is reported as a ConfigError.

A failure inside a running pipeline (a file that stops decoding) is an
`OpError` of TensorFlow; `named_data_errors(source)` turns those that carry a
pipeline's message into the `DataError` naming the file, and a damaged
TFRecord file (TensorFlow's `DataLossError`, which names none) into one
naming the file among the source's `record_files()`.
"""

import collections.abc

from bn_zoo.data import sources
from bn_zoo.data.errors import named_data_errors  # noqa: F401 - the trainer's handle
from bn_zoo.training.errors import ConfigError, TrainingError
from bn_zoo.training.mnist_inception_input import MNISTInceptionInput
from bn_zoo.training.mnist_input import MNISTInput

sources.register_builtin("mnist", MNISTInput)  # Section 4.1.
sources.register_builtin("mnist_inception", MNISTInceptionInput)  # The CPU-scale Figure 3.


class _Sources(collections.abc.Mapping):
    """{name: class} of the data sources known in this process; `name in
    INPUTS` also holds for an import path (checked when it is looked up)."""

    def __getitem__(self, name):
        try:
            return sources.get(name)
        except ValueError as error:
            raise KeyError(name) from error

    def __contains__(self, name):
        return isinstance(name, str) and (name in sources.names()
                                          or sources.is_import_path(name))

    def __iter__(self):
        return iter(sources.names())

    def __len__(self):
        return len(sources.names())


INPUTS = _Sources()


def _input_class(name):
    try:
        return sources.get(name)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def default_config(name):
    """The `config.data` fields of data source `name`, with defaults."""
    return _input_class(name).default_config()


def field_docs(name):
    """What each field of data source `name`'s `config.data` means."""
    return dict(_input_class(name).FIELD_DOCS)


def check_config(data):
    """Validates a resolved `config.data` (a dict); raises ConfigError."""
    try:
        _input_class(data["name"]).check_config(data)
    except TrainingError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from error


def recorded_name(name):
    """The name to record in config.json for `config.data.name`: a source
    registered by a module of yours as its import path (found in a process
    that has not imported the module), bn_zoo's own and paths as they are."""
    if name in sources.BUILTIN_NAMES or sources.is_import_path(name):
        return name
    cls = _input_class(name)
    return f"{cls.__module__}:{cls.__qualname__}"


def model_input(model):
    """The `ModelInput` of `config.model`: the input shape of
    `model.kwargs.input_shape`, else of the weights' data config, else the
    model's default; crop and interpolation from the weights' data config
    (`bn_zoo.models.data_config(model.name, model.weights)`).

    Raises:
        ConfigError: no input shape is known, or it is not an image's.
    """
    from bn_zoo.models import catalogue

    weights = model.get("weights") if hasattr(model, "get") else None
    try:
        config = catalogue.data_config(model.name, weights)
    except ValueError:  # Weights the trainer reports itself.
        config = catalogue.data_config(model.name)
    kwargs = model.kwargs if model.get("kwargs") is not None else {}
    shape = kwargs.get("input_shape") or config.input_shape
    if shape is None:
        raise ConfigError(
            f"The data source needs the input size of {model.name!r}, which neither "
            "config.model.kwargs.input_shape nor its weights' data config gives: set "
            "config.model.kwargs.input_shape, e.g. (224, 224, 3).")
    try:
        return sources.ModelInput(tuple(shape), config.crop_fraction, config.crop_mode,
                                  config.interpolation)
    except ValueError as error:
        raise ConfigError(f"config.model {model.name!r}: {error}") from None


def _imagenet_names(source, data):
    if data.name == "imagenet" and source.num_classes == 1000:
        from bn_zoo.models import labels

        return list(labels.class_names("imagenet1000"))
    return None


def create(data, preprocess=None, model=None):
    """The data source of a resolved `config.data`.

    Args:
        data: The resolved `config.data`.
        preprocess: Maps [0, 255] image batches to the model's input.
        model: The resolved `config.model`, for sources that size images to
            the model (`model_input`); None for the others.

    Raises:
        ConfigError: an unknown source, or one that needs `model`.
        DataError: missing or unreadable data (nothing is written before).
    """
    cls = _input_class(data.name)
    if sources.takes_model_input(cls):
        if model is None:
            source = cls(data, preprocess)
        else:
            source = cls(data, preprocess, model_input=model_input(model))
    else:
        source = cls(data, preprocess)
    names = _imagenet_names(source, data) or getattr(source, "class_names", None)
    if names is None:
        names = [str(i) for i in range(source.num_classes)]
    names = [str(n) for n in names]
    if len(names) != source.num_classes:
        raise ConfigError(
            f"Data source {data.name!r} has {source.num_classes} classes but "
            f"{len(names)} class names; its class_names must name each class once.")
    source.class_names = names
    return source
