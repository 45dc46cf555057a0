"""The zoo's catalogue: every model, its recipe and results, its weights.

Pure data and lookups, as timm's `_registry.py` and keras_hub's presets: one
`ModelInfo` per model, added by one function, `register_model`, which the
zoo's own models (`bn_zoo.models.zoo`) and networks of your own use alike.
Nothing here builds a model or reads a file: `bn_zoo.models.hub` builds a
model from its entry and resolves `weights=`.

    bn_zoo.list_models()            # sorted names
    bn_zoo.model_info("bn_x30")     # a ModelInfo: recipe, results, weights
    data_config("bn_inception", "imagenet_caffe")   # input size, crop, scaling, labels

    @bn_zoo.register_model(preprocessing="mnist", recipe={"batch_size_per_replica": 128})
    def small_convnet(classes=10, classifier_activation="softmax", seed=None):
        ...   # returns a keras.Model

A builder that is not registered can be named by import path,
`"package.module:function"`, wherever a model name is taken (`create_model`,
`model_info`, the trainer's `config.model.name`, `trainers.export`).
"""

import collections
import dataclasses
import inspect
import os
import pathlib

from bn_zoo import import_paths
from bn_zoo.models.data_config import (  # noqa: F401 - re-exported
    CROP_MODES,
    INTERPOLATIONS,
    DataConfig,
)
from bn_zoo.models.input_scaling import PREPROCESSING_MODES, check_mode

# Weights files shipped inside the package (see `shipped`).
WEIGHTS_DIR = pathlib.Path(__file__).resolve().parent.parent / "weights"

# The trainer's settings for a model registered without them: plain momentum
# SGD at a constant learning rate. The batch, the learning rate and the
# number of steps have no default: the config (or the recipe) sets them.
CUSTOM_RECIPE = {
    "optimizer": "sgd_momentum",
    "base_learning_rate": None,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "lr_decay_rate": 1.0,
    "lr_decay_steps": 1,
    "batch_size_per_replica": None,
    "train_steps": None,
}
# Every key a recipe may have (`ModelInfo.recipe`).
RECIPE_KEYS = (
    *CUSTOM_RECIPE,
    "dropout_rate",
    "lrn",
    "distortion_strength",
    "shuffle_thoroughly",
)
_DEFAULT_NOTE = "bn_zoo's default for a model registered without it"


@dataclasses.dataclass(frozen=True)
class RegisteredWeights:
    """One registered weights file.

    Attributes:
        file_name: Name of the file in the Keras cache.
        origin: URL (`https://...` or `file://...`) to fetch it from.
        sha256: Expected sha256 hex digest of the file.
        classes: Number of classes of the classifier the weights were saved
            with (`include_top=True` must use this many).
        description: What the weights are (data, recipe, accuracy).
        inference_statistics: The BN statistics ("moving" or "population")
            the weights are served with, unless the caller chooses with
            `batch_norm_kwargs={"inference_statistics": ...}`; None leaves the
            layers' own choice.
        preprocessing: The `preprocess_input` mode the weights expect; None
            means the data config's, else the model's
            (`model_info(name).preprocessing`). Kept for weights registered
            before `data_config`; it must agree with `data_config`.
        model_kwargs: Builder arguments the weights need (e.g. the
            architecture variant); arguments that differ are refused.
        batch_norm_kwargs: BN arguments the weights need (e.g. the variant's
            epsilon); `batch_norm_kwargs` that differ are refused.
        release: None for a ready `.weights.h5` file; "slim" or
            "caffe_torch" for a public release converted on first use
            (`bn_zoo.models.releases`), whose `sha256` is then None.
        release_classes: Classes of the release's own classifier when it
            differs from `classes` (slim's 1001, class 0 = background), also
            accepted as `classes` with include_top=True.
        source: Who released the weights, and under what license.
        reported_accuracy: The release's own ImageNet validation figures,
            {"top1": fraction, "top5": fraction, "protocol": text}.
        verified: What bn_zoo checked about the conversion, and how.
        data_config: The `DataConfig` of the weights (input size, crop,
            interpolation, preprocessing, label set); None: derived from the
            model's (`data_config(model, weights)` says which applies).
    """

    file_name: str
    origin: str
    sha256: str
    classes: int
    description: str = ""
    inference_statistics: str = None
    preprocessing: str = None
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    batch_norm_kwargs: dict = dataclasses.field(default_factory=dict)
    release: str = None
    release_classes: int = None
    source: str = ""
    reported_accuracy: dict = dataclasses.field(default_factory=dict)
    verified: str = ""
    data_config: DataConfig = None

    def __post_init__(self):
        config = self.data_config
        if config is None:
            if self.preprocessing is not None:
                check_mode(self.preprocessing)
            return
        if not isinstance(config, DataConfig):
            raise TypeError(f"`data_config` must be a DataConfig. Received: {config!r}")
        if self.preprocessing is None:
            object.__setattr__(self, "preprocessing", config.preprocessing)
        elif self.preprocessing != config.preprocessing:
            raise ValueError(
                f"`preprocessing={self.preprocessing!r}` contradicts the data config's "
                f"{config.preprocessing!r}; leave `preprocessing` unset (the data "
                "config says it).")

    @property
    def accepted_classes(self):
        """The class counts `include_top=True` may use with these weights."""
        return tuple(c for c in (self.classes, self.release_classes) if c is not None)


def shipped(file_name, sha256, classes, **fields):
    """A `RegisteredWeights` for a file shipped in `bn_zoo/weights/`.

    `get_file` copies it from its `file://` origin into the Keras cache like
    any download; `sha256sum bn_zoo/weights/<file>` gives the hash.
    """
    return RegisteredWeights(
        file_name=file_name,
        origin=(WEIGHTS_DIR / file_name).as_uri(),
        sha256=sha256,
        classes=classes,
        **fields,
    )


# What a model that offers `features=` provides, two functions:
# names(requested, **arguments) -> the checked end points (a tuple), and
# model(model, names, **arguments) -> the model whose output is {name: tensor}.
# `arguments` are all the builder's arguments (`Builder.arguments`); the hub
# builds the whole model, loads its weights, then takes its features.
Features = collections.namedtuple("Features", ["names", "model"])


class BuilderArgumentError(TypeError):
    """Arguments that a model builder does not take."""


class Builder:
    """How `create_model` calls a model's function.

    `create_model(name, **kwargs)` calls `function(**defaults, **kwargs)`:
    an argument given as None keeps the model's default (the recipe's
    dropout rate, say). `seed` and `batch_norm_kwargs` go only to a function
    that takes them (the trainer passes them to every model); any other
    argument the function does not take is refused. `weights` and
    `features` are `create_model`'s own, unless the function takes
    `weights` itself.

    Args:
        function: Returns a built `keras.Model`.
        defaults: The model's own arguments, e.g. {"batch_norm": True}.
        features: A `Features` pair, for a model that offers `features=`.
    """

    def __init__(self, function, defaults=None, features=None):
        if not callable(function):
            raise TypeError(f"A model builder must be a function; received {function!r}.")
        self.function = function
        self.defaults = dict(defaults or {})
        self.features = features
        parameters = inspect.signature(function).parameters
        self._parameters = parameters
        self._takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        self.__name__ = self.__qualname__ = function.__name__
        self.__module__ = function.__module__

    @property
    def loads_weights(self):
        """Whether the function takes `weights` itself (then `create_model`
        passes it on instead of loading the file)."""
        return "weights" in self._parameters

    def takes(self, argument):
        """Whether `create_model` accepts `argument` for this model."""
        return (
            argument == "weights"
            or (argument == "features" and self.features is not None)
            or self._takes_any
            or argument in self._parameters
        )

    def arguments(self, kwargs):
        """Every argument the function gets for `create_model(**kwargs)`,
        defaults included, as a dict (for checks before building)."""
        arguments = {
            name: p.default
            for name, p in self._parameters.items()
            if p.default is not p.empty and p.kind is not p.VAR_KEYWORD
        }
        arguments.update(self._merged(kwargs))
        return arguments

    def _merged(self, kwargs):
        kept = {k: v for k, v in kwargs.items() if not (v is None and k in self.defaults)}
        return {**self.defaults, **kept}

    def __call__(self, **kwargs):
        kwargs = self._merged(kwargs)
        for optional in ("seed", "batch_norm_kwargs"):
            if optional in kwargs and not (self._takes_any or optional in self._parameters):
                if optional == "batch_norm_kwargs" and kwargs[optional]:
                    raise BuilderArgumentError(
                        f"Model builder {self.function.__qualname__!r} takes no "
                        "`batch_norm_kwargs`, so it cannot get "
                        f"{dict(kwargs[optional])}. Add the argument to the builder "
                        "(and pass it to its BatchNormalization layers).")
                kwargs.pop(optional)
        unexpected = [n for n in kwargs if not (self._takes_any or n in self._parameters)]
        if unexpected:
            them = "it" if len(unexpected) == 1 else "them"
            raise BuilderArgumentError(
                f"Model builder {self.function.__qualname__!r} takes no "
                f"{', '.join(repr(n) for n in unexpected)}. Drop {them} from the "
                "model's arguments (a trainer config built on configs/imagenet*.py "
                "sets the Inception family's depth_multiplier, dropout_rate and lrn: "
                "give your model its own `config.model.kwargs = "
                f"ml_collections.ConfigDict({{...}})`), or add {them} to the builder.")
        return self.function(**kwargs)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the catalogue knows about one model.

    Attributes:
        name: Catalogue name (`create_model(name)`).
        family: `"mlp"`, `"inception"`, or `"custom"` for networks of your own.
        description: One line on what the network is.
        paper_section: Where the paper describes it.
        preprocessing: Mode for `bn_zoo.preprocess_input`.
        default_input_shape: Input shape of the paper's experiment.
        num_classes: Classes of the paper's experiment.
        recipe: The training recipe: optimizer, base_learning_rate, momentum,
            weight_decay (λ in the gradient term λ·w), lr_decay_rate,
            lr_decay_steps (exponential decay, staircase), dropout_rate, lrn,
            distortion_strength, batch_size_per_replica, train_steps,
            shuffle_thoroughly.
        recipe_notes: For every recipe key whose value the paper does not
            state, where the value comes from.
        paper_results: Figure 3: `steps_to_72_2` (training steps to reach
            Inception's 72.2% top-1 validation accuracy) and `max_accuracy`
            (a fraction); None where the paper gives no number.
        weights: Registered weights, {name: RegisteredWeights}.
        factory: The `Builder` that `create_model` calls (its `takes(arg)`
            says which arguments the model accepts).
        import_path: `"package.module:function"` of a model of your own
            (`register_model`, or named by import path), which any process
            can import; None for the zoo's own models (a function with the
            model's defaults) and for builders defined in `__main__`.
        data_config: The model's own `DataConfig` (input, crop, scaling,
            label set), for random weights or a weights file; registered
            weights have their own (`data_config(name, weights)`).

    `str(info)` (and `print(bn_zoo.model_info(name))`) is a readable
    summary: the model, its data config, and each registered weights with
    its data config.
    """

    name: str
    family: str
    description: str
    paper_section: str
    preprocessing: str
    default_input_shape: tuple
    num_classes: int
    recipe: dict
    recipe_notes: dict
    paper_results: dict
    weights: dict
    factory: object = dataclasses.field(repr=False, compare=False)
    import_path: str = None
    data_config: DataConfig = None

    @property
    def unstated(self):
        """The recipe keys whose values the paper does not state."""
        return frozenset(self.recipe_notes)

    def __str__(self):
        where = f", paper {self.paper_section}" if self.paper_section else ""
        classes = "" if self.num_classes is None else f", {self.num_classes} classes"
        lines = [f"{self.name} ({self.family}{where}{classes}): {self.description}",
                 f"  data: {self.data_config}"]
        for weights_name in self.weights:
            entry = self.weights[weights_name]
            accepted = "/".join(str(c) for c in entry.accepted_classes)
            lines.append(f"  weights {weights_name!r} ({accepted} classes): "
                         f"{_resolved(self, weights_name)}")
        return "\n".join(lines)


# name -> ModelInfo: the zoo's models (bn_zoo.models.zoo) and those
# registered in this process. `model_info` hands out copies.
_MODELS = {}


def register_model(builder=None, *, name=None, preprocessing="inception", input_shape=None,
                   classes=None, recipe=None, description=None, weights=None,
                   family="custom", paper_section="", recipe_notes=None, paper_results=None,
                   defaults=None, features=None, data_config=None):
    """Adds a model to the catalogue (a decorator, as timm's).

    ```python
    @bn_zoo.register_model(preprocessing="mnist", recipe={"batch_size_per_replica": 128})
    def small_convnet(classes=10, classifier_activation="softmax", seed=None):
        ...   # returns a keras.Model
    bn_zoo.create_model("small_convnet")
    ```

    Then `create_model`, `model_info`, `list_models`, the trainer
    (`config.model.name = "small_convnet"`) and `trainers.export` know it, in
    every process that imported its module. A builder that is not
    registered can still be named by import path, `"package.module:function"`,
    which imports the module itself (with the defaults below); a registered
    one is found that way too, and the trainer records it so in its
    `config.json`, so that `restore_model` and `trainers.export` find it in
    another process.

    The builder returns a built `keras.Model` (functional or Sequential) and
    takes `classifier_activation` (None: logits, which the trainer trains on;
    `"softmax"`: probabilities, for `restore_model` and export), as
    keras.applications factories do. `seed` (the trainer passes
    `config.seed`) and `batch_norm_kwargs` (for the trainer's
    `synchronized_batch_norm`) are passed only to a builder that takes them;
    any other `create_model` argument goes to it as is. Without a `weights`
    argument, `create_model(name, weights=...)` builds the model and loads
    the `.weights.h5` file (a path or a registered name) with
    `bn_zoo.models.load_weights`.

    The zoo's own models are registered with this function too
    (`bn_zoo/models/zoo.py`), with the keyword arguments after `weights`.

    Args:
        builder: The function (when used as `@register_model` without
            parentheses).
        name: Catalogue name; default: the function's name. It must not be a
            name of the zoo's own models, nor one registered by another
            function.
        preprocessing: The `preprocess_input` mode of its input: `"mnist"`
            (x / 255), `"inception"` (x / 127.5 − 1, default),
            `"caffe_bn_inception"`, `"imagenet_mean_std"` or
            `"caffe_resnet"` (`PREPROCESSING_MODES`). The trainer scales the
            data with it, and exports put it in their signatures.
        input_shape: Default input shape (for exports of models whose input
            is not an image), or None.
        classes: Number of classes, or None.
        recipe: Training recipe, merged over `CUSTOM_RECIPE` (momentum SGD,
            momentum 0.9, no weight decay, constant learning rate): keys of
            `ModelInfo.recipe` such as `base_learning_rate`,
            `batch_size_per_replica`, `train_steps`; the trainer fills the
            config fields left at None from it.
        description: One line; default: the first line of the docstring.
        weights: Registered weights, {name: `RegisteredWeights`}.
        family: "custom" (default), or the zoo family of its own models.
        paper_section: Where the paper describes it.
        recipe_notes: {recipe key: where its value comes from}, for values
            the paper does not state; keys left at `CUSTOM_RECIPE`'s values
            are noted as bn_zoo's defaults.
        paper_results: The paper's figures for it (`ModelInfo.paper_results`).
        defaults: Arguments the builder gets for this model unless the
            caller passes them (see `Builder`): one function can serve
            several models.
        features: A `Features` pair, for a model that offers `features=`.
        data_config: The model's other `DataConfig` fields, a dict such as
            `{"label_set": "imagenet1000", "crop_fraction": 0.9}`;
            `input_shape` and `preprocessing` come from the arguments above.
            Default: crop fraction 0.875 (`"central_fraction"`), bilinear,
            no label set.

    Returns:
        The builder, unchanged (or the decorator, without `builder`).

    Raises:
        ValueError, TypeError: a taken name, an unknown preprocessing mode or
            recipe key, or a builder without `classifier_activation`.
    """

    def register(function):
        key = function.__name__ if name is None else name
        info = _info(
            function, key, preprocessing=preprocessing, input_shape=input_shape,
            classes=classes, recipe=recipe, description=description, weights=weights,
            family=family, paper_section=paper_section, recipe_notes=recipe_notes,
            paper_results=paper_results, defaults=defaults, features=features,
            data_config=data_config)
        previous = _MODELS.get(key)
        if previous is not None and not _same(previous.factory, info.factory):
            if previous.family != "custom":
                raise ValueError(f"{key!r} is one of the zoo's own models; register yours "
                                 "under another name (register_model(name=...)).")
            raise ValueError(
                f"Model {key!r} is already registered by "
                f"{_path_of(previous.factory.function) or previous.factory.function!r}; "
                "register yours under another name (register_model(name=...)).")
        _MODELS[key] = info  # The same function, re-imported, replaces itself.
        return function

    return register if builder is None else register(builder)


def register_weights(model_name, weights_name, weights):
    """Adds (or replaces) the registered weights `weights_name` of a
    catalogued model: a `RegisteredWeights`, e.g. `shipped(...)`."""
    if not isinstance(weights, RegisteredWeights):
        raise TypeError(f"`weights` must be a RegisteredWeights. Received: {weights!r}")
    info = _MODELS[_lookup(model_name).name]
    _MODELS[info.name] = dataclasses.replace(
        info, weights={**info.weights, weights_name: weights})


def _remove_weights(model_name, weights_name):
    info = _MODELS[model_name]
    kept = {k: v for k, v in info.weights.items() if k != weights_name}
    _MODELS[model_name] = dataclasses.replace(info, weights=kept)


def list_models():
    """Sorted names of every catalogued model: the zoo's, and those added
    with `register_model` in this process."""
    return sorted(_MODELS)


def model_info(name):
    """The `ModelInfo` of a catalogued model, or of a builder named by import
    path (`"package.module:function"`); a fresh copy: editing its dicts does
    not change the catalogue.

    Raises:
        ValueError: an unknown name (the message lists the known ones) or an
            import path that does not import.
        TypeError: a name that is not a string; a builder without
            `classifier_activation`.
    """
    info = _lookup(name)
    return dataclasses.replace(
        info,
        recipe=dict(info.recipe),
        recipe_notes=dict(info.recipe_notes),
        paper_results=dict(info.paper_results),
        weights=dict(info.weights),
    )


def weights_of(model_name):
    """The weights registered for `model_name`, {weights name: RegisteredWeights}."""
    return dict(_lookup(model_name).weights)


def preprocessing_of(model_name, weights_name=None):
    """The `preprocess_input` mode for `model_name` with the registered
    weights `weights_name` (or the model's own mode when None): the
    `preprocessing` of `data_config(model_name, weights_name)`.

    Raises:
        ValueError: unknown weights (the message lists the registered ones).
    """
    info = _lookup(model_name)
    if weights_name is not None and weights_name not in info.weights:
        names = sorted(info.weights) or "none registered"
        raise ValueError(
            f"Unknown weights {weights_name!r} for model {model_name!r}; "
            f"registered: {names}."
        )
    return _resolved(info, weights_name).preprocessing


def data_config(model_name, weights=None):
    """The `DataConfig` that applies to `model_name` with `weights`: input
    size, crop fraction and mode, interpolation, preprocessing and label set.

    Args:
        model_name: A catalogued model, or an import path.
        weights: A registered weights name (its data config); None, or the
            path of a weights file, `.keras` file or workdir (the model's
            own data config: a file carries none).

    Returns:
        A `DataConfig`. For registered weights without one of their own, the
        model's, with the weights' `preprocessing`, the input shape of their
        `model_kwargs` and, when their class count differs from the
        model's, no label set.

    Raises:
        ValueError: an unknown model, or a `weights` string that is neither
            registered nor looks like a path (the message lists the
            registered names).
    """
    info = _lookup(model_name)
    if weights is None or (isinstance(weights, str) and weights in info.weights):
        return _resolved(info, weights)
    if isinstance(weights, os.PathLike) or (isinstance(weights, str) and (
            os.sep in weights or "/" in weights or weights.endswith((".h5", ".keras"))
            or os.path.exists(weights))):
        return _resolved(info, None)
    names = sorted(info.weights) or "none registered"
    raise ValueError(
        f"Unknown weights {weights!r} for model {info.name!r}: registered: {names}; or "
        f"pass the path of a weights file. Received: weights={weights!r}")


def _resolved(info, weights_name):
    """The DataConfig of `info` with its registered weights `weights_name`."""
    own = info.data_config
    if weights_name is None:
        return own
    entry = info.weights[weights_name]
    if entry.data_config is not None:
        return entry.data_config
    changes = {}
    if entry.preprocessing is not None:
        changes["preprocessing"] = entry.preprocessing
    if entry.model_kwargs.get("input_shape") is not None:
        changes["input_shape"] = tuple(entry.model_kwargs["input_shape"])
    if entry.classes != info.num_classes:
        changes["label_set"] = None
    return dataclasses.replace(own, **changes)


def import_builder(path):
    """The object at import path "package.module:function" (importing the
    module, which may register it); a ValueError that says what is missing."""
    return import_paths.load(path, "model")


def _lookup(name):
    """The stored ModelInfo of `name`: a catalogued model or an import path."""
    if not isinstance(name, str):
        raise TypeError(f"A model name must be a string; received {name!r}.")
    if name in _MODELS:
        return _MODELS[name]
    if ":" in name:
        function = import_builder(name)  # Importing may register it.
        for info in _MODELS.values():
            if info.factory.function is function and not info.factory.defaults:
                return info
        return _info(function, name)
    raise ValueError(
        f"Unknown model {name!r}. Known models: {', '.join(list_models())}. A network "
        "of your own: register it with @bn_zoo.register_model (in a module imported "
        "first) or name it by import path, 'package.module:function'."
    )


def _info(function, name, preprocessing="inception", input_shape=None, classes=None,
          recipe=None, description=None, weights=None, family="custom", paper_section="",
          recipe_notes=None, paper_results=None, defaults=None, features=None,
          data_config=None):
    builder = Builder(function, defaults, features)
    if not builder.takes("classifier_activation"):
        raise TypeError(
            f"Model builder {function.__qualname__!r} must take a `classifier_activation` "
            "argument (None: logits, which the trainer trains on; 'softmax' for "
            "restore_model and exports), as keras.applications factories do.")
    if preprocessing not in PREPROCESSING_MODES:
        raise ValueError(f"`preprocessing` must be one of {PREPROCESSING_MODES}; "
                         f"received {preprocessing!r}.")
    recipe = dict(recipe or {})
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise ValueError(f"Unknown recipe keys {unknown}; known: {sorted(RECIPE_KEYS)}.")
    weights = dict(weights or {})
    for weights_name, entry in weights.items():
        if not isinstance(entry, RegisteredWeights):
            raise TypeError(f"Weights {weights_name!r} of {name!r} must be a "
                            f"RegisteredWeights. Received: {entry!r}")
    notes = {k: _DEFAULT_NOTE for k in CUSTOM_RECIPE
             if k not in recipe and CUSTOM_RECIPE[k] is not None}
    notes.update(recipe_notes or {})
    doc = inspect.getdoc(function) or ""
    return ModelInfo(
        name=name,
        family=family,
        description=description or (doc.splitlines()[0] if doc else function.__qualname__),
        paper_section=paper_section,
        preprocessing=preprocessing,
        default_input_shape=None if input_shape is None else tuple(input_shape),
        num_classes=classes,
        recipe=dict(CUSTOM_RECIPE, **recipe),
        recipe_notes=notes,
        paper_results=dict(paper_results or {"steps_to_72_2": None, "max_accuracy": None}),
        weights=weights,
        factory=builder,
        import_path=None if builder.defaults else _path_of(function),
        data_config=_model_data_config(name, preprocessing, input_shape, data_config),
    )


def _model_data_config(name, preprocessing, input_shape, fields):
    """A model's own DataConfig from `register_model`'s arguments."""
    fields = {} if fields is None else fields
    if not isinstance(fields, dict):
        raise TypeError(f"`data_config` of {name!r} must be a dict of DataConfig fields, "
                        f"e.g. {{'label_set': 'imagenet1000'}}. Received: {fields!r}")
    reserved = sorted({"preprocessing", "input_shape"} & set(fields))
    if reserved:
        raise ValueError(
            f"Set {reserved} with register_model's own arguments, not in `data_config`. "
            f"Received: data_config={fields!r}")
    known = {f.name for f in dataclasses.fields(DataConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"Unknown DataConfig fields {unknown}; known: {sorted(known)}. "
                         f"Received: data_config={fields!r}")
    return DataConfig(**fields, preprocessing=preprocessing, input_shape=input_shape)


def _same(old, new):
    """Whether two builders are one registration (the same function, or the
    same import path after a re-import, with the same defaults)."""
    same_function = old.function is new.function or (
        _path_of(new.function) is not None
        and _path_of(old.function) == _path_of(new.function))
    return same_function and old.defaults == new.defaults


def _path_of(function):
    """"module:qualname" of a function any process can import, else None."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        return None
    return f"{module}:{qualname}"
