"""Networks of your own in the registry: `register_model` and import paths.

A builder joins the registry with the `register_model` decorator (as timm's
`@register_model`), or is named by import path, `"package.module:function"`,
wherever `bn_zoo.models.registry` takes a model name. Its entry has the
fields of a zoo model's (`registry.ModelInfo`), family `"custom"`.
"""

import importlib
import inspect

from bn_zoo.models import weights as weights_lib

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
_DEFAULT_NOTE = "bn_zoo's default for a model registered without it"
# name -> entry, like registry._MODELS, filled by register_model.
REGISTERED = {}


def register_model(builder=None, *, name=None, preprocessing="inception", input_shape=None,
                   classes=None, recipe=None, description=None):
    """Adds a network of your own to the registry (a decorator, as timm's).

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
    `config.seed`), `weights` and `batch_norm_kwargs` (for the trainer's
    `synchronized_batch_norm`) are passed only to a builder that takes them;
    any other `create_model` argument goes to it as is. Without a `weights`
    argument, `create_model(name, weights=path)` builds the model and loads
    the `.weights.h5` file with `bn_zoo.models.load_weights`.

    Args:
        builder: The function (when used as `@register_model` without
            parentheses).
        name: Registry name; default: the function's name. It must not be a
            name of the zoo's own models, nor one registered by another
            function.
        preprocessing: The `preprocess_input` mode of its input: `"mnist"`
            (x / 255), `"inception"` (x / 127.5 − 1, default) or
            `"caffe_bn_inception"`. The trainer scales the data with it, and
            exports put it in their signatures.
        input_shape: Default input shape (for exports of models whose input
            is not an image), or None.
        classes: Number of classes, or None.
        recipe: Training recipe, merged over `CUSTOM_RECIPE` (momentum SGD,
            momentum 0.9, no weight decay, constant learning rate): keys of
            `ModelInfo.recipe` such as `base_learning_rate`,
            `batch_size_per_replica`, `train_steps`; the trainer fills the
            config fields left at None from it.
        description: One line; default: the first line of the docstring.

    Returns:
        The builder, unchanged (or the decorator, without `builder`).

    Raises:
        ValueError, TypeError: a taken name, an unknown preprocessing mode or
            recipe key, or a builder without `classifier_activation`.
    """

    def register(function):
        from bn_zoo.models import registry

        key = function.__name__ if name is None else name
        new = entry(function, key, preprocessing, input_shape, classes, recipe, description)
        if key in registry.list_models() and key not in REGISTERED:
            raise ValueError(f"{key!r} is one of the zoo's own models; register yours "
                             "under another name (register_model(name=...)).")
        previous = REGISTERED.get(key)
        same = previous is not None and (
            previous["builder"] is function
            or _path_of(function) is not None
            and _path_of(previous["builder"]) == _path_of(function))
        if previous is not None and not same:
            raise ValueError(
                f"Model {key!r} is already registered by "
                f"{_path_of(previous['builder']) or previous['builder']!r}; register "
                "yours under another name (register_model(name=...)).")
        REGISTERED[key] = new  # The same function, re-imported, replaces itself.
        return function

    return register if builder is None else register(builder)


def _recipe_keys():
    from bn_zoo.models import registry

    return registry.INCEPTION_RECIPE


def _path_of(function):
    """"module:qualname" of a function any process can import, else None."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname:
        return None
    return f"{module}:{qualname}"


def entry(function, name, preprocessing="inception", input_shape=None, classes=None,
          recipe=None, description=None):
    """The registry entry of builder `function` (see `register_model`)."""
    from bn_zoo.models.preprocessing import PREPROCESSING_MODES

    if not callable(function):
        raise TypeError(f"A model builder must be a function; received {function!r}.")
    parameters = inspect.signature(function).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    if "classifier_activation" not in parameters and not takes_any:
        raise TypeError(
            f"Model builder {function.__qualname__!r} must take a `classifier_activation` "
            "argument (None: logits, which the trainer trains on; 'softmax' for "
            "restore_model and exports), as keras.applications factories do.")
    if preprocessing not in PREPROCESSING_MODES:
        raise ValueError(f"`preprocessing` must be one of {PREPROCESSING_MODES}; "
                         f"received {preprocessing!r}.")
    recipe = dict(recipe or {})
    known = set(CUSTOM_RECIPE) | set(_recipe_keys())
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise ValueError(f"Unknown recipe keys {unknown}; known: "
                         f"{sorted(known)}.")
    doc = inspect.getdoc(function) or ""
    return dict(
        family="custom",
        description=description or (doc.splitlines()[0] if doc else function.__qualname__),
        paper_section="",
        preprocessing=preprocessing,
        default_input_shape=None if input_shape is None else tuple(input_shape),
        num_classes=classes,
        recipe=dict(CUSTOM_RECIPE, **recipe),
        recipe_notes={k: _DEFAULT_NOTE for k in CUSTOM_RECIPE if k not in recipe
                      and CUSTOM_RECIPE[k] is not None},
        paper_results={"steps_to_72_2": None, "max_accuracy": None},
        factory=_factory(function),
        builder=function,
        import_path=_path_of(function),
    )


class BuilderArgumentError(TypeError):
    """Arguments that a model builder of one's own does not take."""


def _factory(function):
    """`create_model`'s call of a builder: `weights`, `seed` and
    `batch_norm_kwargs` only where it takes them (see `register_model`)."""
    parameters = inspect.signature(function).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())

    def create(**kwargs):
        weights = kwargs.pop("weights", None) if "weights" not in parameters else None
        for optional in ("seed", "batch_norm_kwargs"):
            if optional in kwargs and optional not in parameters and not takes_any:
                if optional == "batch_norm_kwargs" and kwargs[optional]:
                    raise BuilderArgumentError(
                        f"Model builder {function.__qualname__!r} takes no "
                        "`batch_norm_kwargs`, so it cannot get "
                        f"{dict(kwargs[optional])}. Add the argument to the builder "
                        "(and pass it to its BatchNormalization layers).")
                kwargs.pop(optional)
        unexpected = [name for name in kwargs if name not in parameters]
        if unexpected and not takes_any:
            raise BuilderArgumentError(
                f"Model builder {function.__qualname__!r} takes no "
                f"{', '.join(repr(n) for n in unexpected)}. Drop "
                f"{'it' if len(unexpected) == 1 else 'them'} from the model's arguments "
                "(a trainer config built on configs/imagenet_*.py sets the Inception "
                "family's depth_multiplier, dropout_rate and lrn: give your model its own "
                "`config.model.kwargs = ml_collections.ConfigDict({...})`), or add "
                f"{'it' if len(unexpected) == 1 else 'them'} to the builder.")
        model = function(**kwargs)
        if weights is not None:
            weights_lib.load_weights(model, weights)
        return model

    create.__qualname__ = create.__name__ = function.__name__
    create.__module__ = function.__module__
    create.takes = lambda argument: takes_any or argument in parameters
    return create


def import_builder(path):
    """The object at import path "package.module:function" (importing the
    module, which may register it); a ValueError that says what is missing."""
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise ValueError(f"A model's import path is 'package.module:function'; got {path!r}.")
    try:
        target = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"Cannot import module {module_name!r} of model {path!r} ({error}). Put its "
            "package on the Python path (e.g. PYTHONPATH).") from error
    for attribute in qualname.split("."):
        if not hasattr(target, attribute):
            raise ValueError(f"Module {module_name!r} has no {qualname!r} (model {path!r}).")
        target = getattr(target, attribute)
    return target
