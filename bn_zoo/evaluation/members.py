"""The models an evaluation runs, each with the input scaling it expects.

    members.registered("bn_inception", "imagenet")          # registered weights
    members.registered("bn_inception", "/tmp/bn.weights.h5",
                       model_kwargs={"depth_multiplier": 0.5}, preprocessing="inception")
    members.from_workdir("workdirs/imagenet/bn_x5")          # a trainer's run
    Member("mine", keras_model, "inception")                 # any Keras model

Several members evaluated together form an ensemble (`bn_zoo.evaluation.evaluate`).
"""

import ast
import dataclasses
import json
import os

import keras

import bn_zoo
from bn_zoo.models import preprocessing as preprocessing_lib
from bn_zoo.models import catalogue, weights_files

OUTPUTS = ("probabilities", "logits")
# create_model arguments an evaluation sets itself.
_RESERVED_KWARGS = ("weights", "include_top", "input_tensor", "pooling")


@dataclasses.dataclass(frozen=True)
class Member:
    """One model of an evaluation.

    Attributes:
        name: How results name it.
        model: A Keras model from `[batch, S, S, 3]` images to
            `[batch, classes]` outputs.
        preprocessing: The `bn_zoo.models.preprocess_input` mode applied to
            the 0-255 RGB crops before the model ("inception": [-1, 1];
            "caffe_bn_inception": BGR minus the means).
        outputs: "probabilities" (softmax outputs, the default of every
            factory; checked on every batch) or "logits" (a model built with
            `classifier_activation=None`: the evaluation applies the softmax).
        data_config: The `bn_zoo.models.DataConfig` of the model and its
            weights, whose crop fraction, crop mode and interpolation the
            evaluation's crops follow; None: the paper's (central 87.5%,
            bilinear).
    """

    name: str
    model: keras.Model
    preprocessing: str
    outputs: str = "probabilities"
    data_config: catalogue.DataConfig = None

    def __post_init__(self):
        if self.preprocessing not in preprocessing_lib.PREPROCESSING_MODES:
            raise ValueError(
                f"Unknown preprocessing {self.preprocessing!r} for {self.name!r}; use one "
                f"of {preprocessing_lib.PREPROCESSING_MODES}.")
        if self.data_config is not None and not isinstance(
                self.data_config, catalogue.DataConfig):
            raise TypeError(
                f"`data_config` of {self.name!r} must be a bn_zoo.models.DataConfig or "
                f"None. Received: {self.data_config!r}")
        if self.outputs not in OUTPUTS:
            raise ValueError(
                f"`outputs` of {self.name!r} must be one of {OUTPUTS}; received "
                f"{self.outputs!r}.")

    @property
    def input_size(self):
        """S of the model's `[batch, S, S, 3]` input, or None if not fixed."""
        shape = self.model.input_shape
        if not isinstance(shape, tuple) or len(shape) != 4 or shape[-1] != 3:
            raise ValueError(
                f"{self.name!r} takes inputs of shape {shape}; an evaluation needs one "
                "input [batch, S, S, 3] (RGB images, channels last).")
        height, width = shape[1:3]
        if height is not None and width is not None and height != width:
            raise ValueError(
                f"{self.name!r} takes {height}x{width} images; the crop protocols make "
                "square crops. Build it with a square input_shape.")
        return height if height is not None else width

    @property
    def num_outputs(self):
        """The number of classes the model outputs (the last output axis)."""
        shape = self.model.output_shape
        if not isinstance(shape, tuple) or len(shape) != 2:
            raise ValueError(
                f"{self.name!r} has outputs of shape {shape}; an evaluation needs one "
                "output [batch, classes].")
        return shape[-1]


def _check_kwargs(model_kwargs):
    if model_kwargs is None:
        return {}
    if not isinstance(model_kwargs, dict):
        raise TypeError(
            f"`model_kwargs` must be a dict of create_model arguments; received "
            f"{model_kwargs!r}.")
    reserved = sorted(set(model_kwargs) & set(_RESERVED_KWARGS))
    if reserved:
        raise ValueError(
            f"`model_kwargs` must not set {reserved}: the evaluation builds the full "
            "classifier with the weights it is given.")
    activation = model_kwargs.get("classifier_activation", "softmax")
    if activation not in ("softmax", None):
        raise ValueError(
            "`classifier_activation` must be 'softmax' (probabilities) or None "
            f"(logits, to which the evaluation applies the softmax); received {activation!r}.")
    return dict(model_kwargs)


def registered(model_name, weights, model_kwargs=None, preprocessing=None):
    """A registered model with registered weights or a `.weights.h5` file.

    Args:
        model_name: A registered model (`bn_zoo.list_models()`).
        weights: A name registered for it (`bn_zoo.model_info(model_name).weights`)
            or the path to a `*.weights.h5` file written by `save_weights`.
        model_kwargs: Extra `bn_zoo.create_model` arguments (e.g. `input_shape`,
            `classes`, `depth_multiplier`) matching what a weights file was
            saved with; registered weights bring their own.
        preprocessing: A `preprocess_input` mode overriding the default: the
            registered weights' mode (`bn_zoo.models.weights.preprocessing_of`),
            or the model's (`bn_zoo.model_info(model_name).preprocessing`) for a file.

    Raises:
        ValueError: an unknown model (the message lists the registered ones),
            unknown weights (it lists the model's registered weights), bad
            `model_kwargs` or weights that do not fit the model.
        FileNotFoundError: a `.weights.h5` path that does not exist.
    """
    kwargs = _check_kwargs(model_kwargs)
    mode = _weights_mode(model_name, weights)
    weights = os.fspath(weights)
    outputs = "logits" if kwargs.get("classifier_activation", "softmax") is None \
        else "probabilities"
    kwargs.setdefault("classifier_activation", "softmax")
    model = bn_zoo.create_model(model_name, weights=weights, **kwargs)
    return Member(f"{model_name} ({weights})", model, preprocessing or mode, outputs,
                  catalogue.data_config(model_name, weights))


def _weights_mode(model_name, weights):
    """The preprocessing mode of `weights` for `model_name`, checking both
    names (and that a weights file exists) without building anything."""
    info = bn_zoo.model_info(model_name)
    if isinstance(weights, str) and weights in info.weights:
        return catalogue.preprocessing_of(model_name, weights)
    if isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(
            weights_files.WEIGHTS_SUFFIX):
        weights = os.fspath(weights)
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"The weights file {weights!r} does not exist. Pass the path of an "
                f"existing '*{weights_files.WEIGHTS_SUFFIX}' file (model.save_weights), or "
                f"a registered name of {model_name!r}: {sorted(info.weights) or 'none'}.")
        return info.preprocessing
    raise ValueError(
        f"Unknown weights {weights!r} for model {model_name!r}. Registered: "
        f"{', '.join(sorted(info.weights)) or 'none'}; or pass the path of a "
        f"'*{weights_files.WEIGHTS_SUFFIX}' file (model.save_weights).")


def from_workdir(workdir):
    """The trained model of a trainer's workdir (`bn_zoo.runs.restore`: the
    newest readable checkpoint, softmax outputs, the BN statistics the run ended with), with
    its model's registered preprocessing.

    Raises:
        WorkdirError: `workdir` has no config.json or no checkpoint.
    """
    from bn_zoo import runs

    run = runs.restore(workdir)
    model_name = run.config["model"]["name"]
    return Member(f"{model_name} ({runs.RunDir(workdir).path}, step {run.step})", run.model,
                  bn_zoo.model_info(model_name).preprocessing,
                  data_config=catalogue.data_config(model_name))


def common_input_size(members, image_size=None):
    """The crop side S shared by `members` (and `image_size` if given).

    Crops are made once for all members, so their inputs must be the same
    size. A member whose input size is not fixed takes `image_size`.

    Raises:
        ValueError: members of different sizes, a size that contradicts
            `image_size`, or no size known at all.
    """
    sizes = {member.name: member.input_size for member in members}
    known = sorted({size for size in sizes.values() if size is not None})
    if len(known) > 1:
        listed = ", ".join(f"{name}: {size}" for name, size in sizes.items())
        raise ValueError(
            f"The models take inputs of different sizes ({listed}). The crops are made "
            "once for every model of an evaluation, so evaluate these separately.")
    if image_size is not None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ValueError(
                f"`image_size` must be a positive integer; received {image_size!r}.")
        if known and known[0] != image_size:
            raise ValueError(
                f"image_size={image_size} but the models take {known[0]}x{known[0]} "
                "inputs; drop image_size or build the models for it.")
        return image_size
    if not known:
        raise ValueError(
            "The models do not fix their input size: pass image_size (e.g. 224).")
    return known[0]


def split_list(values):
    """Repeated command-line values with comma-separated items, as one list:
    `["a,b", "c"]` -> `["a", "b", "c"]`."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def parse_model_kwargs(text):
    """A dict of create_model arguments from a JSON or Python dict literal
    (`'{"depth_multiplier": 0.5}'`, `"{'classifier_activation': None}"`)."""
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, dict):
            return value
    raise ValueError(
        f"model_kwargs {text!r} is not a JSON or Python dict; write e.g. "
        "'{\"depth_multiplier\": 0.5, \"input_shape\": [224, 224, 3]}'.")


def _per_model(values, count, what):
    """`values` given once for all `count` models, or once per model."""
    if len(values) == 1:
        return list(values) * count
    if len(values) not in (0, count):
        raise ValueError(
            f"{len(values)} {what} for {count} models: give it once (for every model) "
            "or once per model, in the same order.")
    return list(values) or [None] * count


def from_lists(models=(), weights=(), model_kwargs=(), preprocessing=(), workdirs=(),
               before_loading=None, announce=None):
    """Members from parallel lists, as `python -m trainers.evaluate` takes them.

    Args:
        models: Registered model names.
        weights: One per model, or one for all: registered names or
            `.weights.h5` paths (required with models).
        model_kwargs: Dicts of create_model arguments, one per model or one
            for all; may be empty.
        preprocessing: `preprocess_input` modes overriding the defaults, one
            per model or one for all; may be empty.
        workdirs: Trainer workdirs, evaluated after the models.
        before_loading: Called once the lists are checked, before any model
            is built (e.g. to check the data first).
        announce: Called with a line before each member is loaded (e.g. print).

    Returns:
        The `Member`s: the models in order, then the workdirs.

    Raises:
        ValueError: nothing to evaluate, weights without models or models
            without weights, list lengths that do not pair up, and the
            errors of `registered` and `from_workdir`.
    """
    models, workdirs = list(models), list(workdirs)
    if not models and not workdirs:
        raise ValueError("Nothing to evaluate: give models (with weights) and/or workdirs.")
    if models and not weights:
        raise ValueError(
            "Each model needs weights: a registered name (bn_zoo.model_info(name).weights) "
            "or the path of a .weights.h5 file.")
    if weights and not models:
        raise ValueError("Weights go with models; a workdir brings its own weights.")
    weights = _per_model(weights, len(models), "weights")
    model_kwargs = _per_model(model_kwargs, len(models), "model_kwargs")
    preprocessing = _per_model(preprocessing, len(models), "preprocessing modes")
    for name, w in zip(models, weights):
        _weights_mode(name, w)  # Unknown names fail before the data is read.
    announce = announce or (lambda line: None)
    if before_loading is not None:
        before_loading()
    members = []
    for name, w, kwargs, mode in zip(models, weights, model_kwargs, preprocessing):
        announce(f"Loading {name} ({w})")
        members.append(registered(name, w, model_kwargs=kwargs, preprocessing=mode))
    for workdir in workdirs:
        announce(f"Loading {workdir}")
        members.append(from_workdir(workdir))
    return members
