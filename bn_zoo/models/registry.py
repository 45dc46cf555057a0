"""The model registry: every network of the paper, its recipe and its results.

This module is the one place that records, per model, how the paper trained
it (Sections 4.1, 4.2, 4.2.1, 4.2.2) and what it reached (Figure 3). Values
the paper does not state are filled from GoogLeNet/Inception practice (or,
for MNIST, chosen by bn_zoo) and listed in `recipe_notes`, key by key.

    bn_zoo.list_models()            # sorted registry names
    bn_zoo.create_model("bn_x30")   # a keras.Model
    bn_zoo.model_info("bn_x30")     # a ModelInfo

Networks of your own join it with the `register_model` decorator (as timm's
`@register_model`), or are named by import path, `"package.module:function"`,
wherever a registered name is taken (`create_model`, `model_info`, the
trainer's `config.model.name`, `trainers.export`).
"""

import dataclasses
import importlib

from bn_zoo.models import custom
from bn_zoo.models import weights as weights_lib
from bn_zoo.models.custom import register_model  # noqa: F401  (bn_zoo.register_model)

IMAGENET_TRAIN_EXAMPLES = 1_281_167
_BATCH = 32  # "using the mini-batch size of 32" (Section 4.2)
_STEPS_PER_EPOCH = IMAGENET_TRAIN_EXAMPLES / _BATCH

# ---------------------------------------------------------------- MNIST
# Section 4.1 states the batch (60) and the number of steps (50,000) only.
# The optimizer and its settings below are chosen by bn_zoo: the paper does
# not state them. The MNIST trainer owns these values; this is the one place
# they live.
# Plain SGD (momentum 0) at 0.25, decayed 4% every 1,000 steps (staircase, as
# GoogLeNet's schedule), the same for both networks: bn_zoo's sweep of
# constant 0.1-1.0 and decayed rates met Section 4.1's comparison with the
# widest margins with this one (see the README's Figure 1 section).
MNIST_RECIPE = {
    "optimizer": "sgd_momentum",
    "base_learning_rate": 0.25,
    "momentum": 0.0,
    "weight_decay": 0.0,
    "lr_decay_rate": 0.96,
    "lr_decay_steps": 1_000,
    "dropout_rate": 0.0,
    "lrn": False,
    "distortion_strength": 0.0,
    "batch_size_per_replica": 60,
    "train_steps": 50_000,
    "shuffle_thoroughly": True,
}
_CHOSEN_BY_BN_ZOO = "chosen by bn_zoo, the paper does not state it (Section 4.1)"
MNIST_RECIPE_NOTES = {
    key: _CHOSEN_BY_BN_ZOO
    for key in (
        "optimizer", "base_learning_rate", "momentum", "weight_decay",
        "lr_decay_rate", "lr_decay_steps", "shuffle_thoroughly",
    )
}

# ------------------------------------------------------------- ImageNet
# Section 4.2: SGD with momentum, mini-batch 32. Section 4.2.1 changes for
# the BN-x networks: higher learning rate, no dropout, L2 weight / 5, learning
# rate decay 6x faster, no LRN, more thorough shuffling, fewer photometric
# distortions. Section 4.2.2 gives the learning rates.
_GOOGLENET_WEIGHT_DECAY = 2e-4
_GOOGLENET_DECAY_EPOCHS = 8.0
INCEPTION_RECIPE = {
    "optimizer": "sgd_momentum",
    "base_learning_rate": 0.0015,
    "momentum": 0.9,
    "weight_decay": _GOOGLENET_WEIGHT_DECAY,
    "lr_decay_rate": 0.96,
    "lr_decay_steps": round(_GOOGLENET_DECAY_EPOCHS * _STEPS_PER_EPOCH),
    "dropout_rate": 0.4,
    "lrn": True,
    "distortion_strength": 1.0,
    "batch_size_per_replica": _BATCH,
    "train_steps": None,
    "shuffle_thoroughly": False,
}
INCEPTION_RECIPE_NOTES = {
    "momentum": "GoogLeNet practice: 'asynchronous SGD with 0.9 momentum' "
    "(Szegedy et al., 2014); the paper says only 'SGD with momentum'",
    "weight_decay": "GoogLeNet practice: 2e-4, the weight decay of the Caffe "
    "GoogLeNet (bvlc_googlenet); λ of the gradient term λ·w, i.e. a loss "
    "λ/2·Σw² (keras.regularizers.L2(λ/2))",
    "lr_decay_rate": "GoogLeNet practice: 'decreasing the learning rate by 4% "
    "every 8 epochs'",
    "lr_decay_steps": "GoogLeNet practice: 8 epochs of 1,281,167 images at "
    "batch 32",
    "distortion_strength": "bn_zoo scale: 1.0 = GoogLeNet's photometric "
    "distortions (Howard, 2013) at full strength",
    "shuffle_thoroughly": "bn_zoo encoding of Section 4.2.1 'shuffle training "
    "examples more thoroughly' ('within-shard shuffling'): True = a 10,000-record "
    "shuffle buffer, False = each shard read in order, as the baseline",
}

BN_X_RECIPE = dict(
    INCEPTION_RECIPE,
    base_learning_rate=0.0075,
    weight_decay=_GOOGLENET_WEIGHT_DECAY / 5,
    lr_decay_steps=round(_GOOGLENET_DECAY_EPOCHS * _STEPS_PER_EPOCH / 6),
    dropout_rate=0.0,
    lrn=False,
    distortion_strength=0.5,
    shuffle_thoroughly=True,
)
BN_X_RECIPE_NOTES = dict(
    INCEPTION_RECIPE_NOTES,
    weight_decay="GoogLeNet's 2e-4 reduced 5x as Section 4.2.1 says: 4e-5, also "
    "the weight decay of TF-slim's inception_v2 (BN-Inception)",
    lr_decay_steps="GoogLeNet's 8 epochs, 6x faster as Section 4.2.1 says",
    distortion_strength="bn_zoo choice: half of GoogLeNet's distortions; "
    "Section 4.2.1 says 'reduce the photometric distortions' without a value",
)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model.

    Attributes:
        name: Registry name (`create_model(name)`).
        family: `"mlp"` or `"inception"`.
        description: One line on what the network is.
        paper_section: Where the paper describes it.
        preprocessing: Mode for `bn_zoo.models.preprocess_input`.
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
        factory: The function `create_model` calls.
        import_path: `"package.module:function"` of a model of your own
            (`register_model`, or named by import path), which any process
            can import; None for the zoo's own models and for builders
            defined in `__main__`.
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

    @property
    def unstated(self):
        """The recipe keys whose values the paper does not state."""
        return frozenset(self.recipe_notes)


def _factory(module, function):
    def create(**kwargs):
        return getattr(importlib.import_module(module), function)(**kwargs)

    create.__qualname__ = create.__name__ = function
    create.__module__ = module
    return create


def _results(steps=None, accuracy=None, **extra):
    return {"steps_to_72_2": steps, "max_accuracy": accuracy, **extra}


_MNIST_INFO = dict(
    family="mlp",
    paper_section="4.1",
    preprocessing="mnist",
    default_input_shape=(28, 28, 1),
    num_classes=10,
    recipe=MNIST_RECIPE,
    recipe_notes=MNIST_RECIPE_NOTES,
    paper_results=_results(),
)
_IMAGENET_INFO = dict(
    family="inception",
    preprocessing="inception",
    default_input_shape=(224, 224, 3),
    num_classes=1000,
)
_INCEPTION = "bn_zoo.models.inception"

_MODELS = {
    "mlp": dict(
        _MNIST_INFO,
        description="3 x 100 sigmoid MLP for MNIST, without BN",
        factory=_factory("bn_zoo.models.mlp", "MLP"),
    ),
    "bn_mlp": dict(
        _MNIST_INFO,
        description="3 x 100 sigmoid MLP for MNIST, BN before every sigmoid",
        factory=_factory("bn_zoo.models.mlp", "BNMLP"),
    ),
    "inception": dict(
        _IMAGENET_INFO,
        description="Inception of Figure 5 without BN: conv biases, ReLU, LRN, "
        "dropout 0.4",
        paper_section="4.2, 4.2.2, Figure 5",
        recipe=INCEPTION_RECIPE,
        recipe_notes=INCEPTION_RECIPE_NOTES,
        paper_results=_results(31_000_000, 0.722),
        factory=_factory(_INCEPTION, "Inception"),
    ),
    "bn_baseline": dict(
        _IMAGENET_INFO,
        description="Inception with BN before every nonlinearity, nothing "
        "else changed",
        paper_section="4.2.2",
        recipe=INCEPTION_RECIPE,
        recipe_notes=INCEPTION_RECIPE_NOTES,
        paper_results=_results(13_300_000, 0.727),
        factory=_factory(_INCEPTION, "BNBaseline"),
    ),
    "bn_inception": dict(
        _IMAGENET_INFO,
        description="BN-Inception: BN everywhere, no LRN, no dropout, trained "
        "as BN-x30 (the paper's single network of Figure 4)",
        paper_section="4.2.1, Figure 4",
        recipe=dict(BN_X_RECIPE, base_learning_rate=0.045),
        recipe_notes=BN_X_RECIPE_NOTES,
        paper_results=_results(
            single_crop_top1_error=0.252, single_crop_top5_error=0.0782
        ),
        factory=_factory(_INCEPTION, "BNInception"),
    ),
    "bn_x5": dict(
        _IMAGENET_INFO,
        description="BN-Inception trained with the Section 4.2.1 changes and "
        "5x Inception's learning rate",
        paper_section="4.2.1, 4.2.2",
        recipe=BN_X_RECIPE,
        recipe_notes=BN_X_RECIPE_NOTES,
        paper_results=_results(2_100_000, 0.730),
        factory=_factory(_INCEPTION, "BNx5"),
    ),
    "bn_x30": dict(
        _IMAGENET_INFO,
        description="BN-x5 with 30x Inception's learning rate",
        paper_section="4.2.2",
        recipe=dict(BN_X_RECIPE, base_learning_rate=0.045),
        recipe_notes=BN_X_RECIPE_NOTES,
        paper_results=_results(2_700_000, 0.748),
        factory=_factory(_INCEPTION, "BNx30"),
    ),
    "bn_x5_sigmoid": dict(
        _IMAGENET_INFO,
        description="BN-x5 with sigmoid instead of ReLU",
        paper_section="4.2.2",
        recipe=BN_X_RECIPE,
        recipe_notes=BN_X_RECIPE_NOTES,
        paper_results=_results(None, 0.698),
        factory=_factory(_INCEPTION, "BNx5Sigmoid"),
    ),
}

# Registry names in the order the paper introduces the models.
PAPER_ORDER = tuple(_MODELS)

def _entry(name):
    """(registry name, entry) of a zoo model, a registered one, or an import path."""
    if not isinstance(name, str):
        raise TypeError(f"A model name must be a string; received {name!r}.")
    if name in _MODELS:
        return name, _MODELS[name]
    if name in custom.REGISTERED:
        return name, custom.REGISTERED[name]
    if ":" in name:
        function = custom.import_builder(name)  # Importing may register it.
        for key, entry in custom.REGISTERED.items():
            if entry["builder"] is function:
                return key, entry
        return name, custom.entry(function, name)
    raise ValueError(
        f"Unknown model {name!r}. Known models: {', '.join(list_models())}. A network "
        "of your own: register it with @bn_zoo.register_model (in a module imported "
        "first) or name it by import path, 'package.module:function'."
    )


def list_models():
    """Sorted names of every registered model: the zoo's, and those added
    with `register_model` in this process."""
    return sorted(set(_MODELS) | set(custom.REGISTERED))


def _check_name(name):
    _entry(name)


def model_info(name):
    """The `ModelInfo` of a registered model, or of a builder named by import
    path (`"package.module:function"`); a fresh copy: editing its dicts does
    not change the registry."""
    name, entry = _entry(name)
    shape = entry["default_input_shape"]
    return ModelInfo(
        name=name,
        family=entry["family"],
        description=entry["description"],
        paper_section=entry["paper_section"],
        preprocessing=entry["preprocessing"],
        default_input_shape=None if shape is None else tuple(shape),
        num_classes=entry["num_classes"],
        recipe=dict(entry["recipe"]),
        recipe_notes=dict(entry["recipe_notes"]),
        paper_results=dict(entry["paper_results"]),
        weights=weights_lib.registered_weights(name),
        factory=entry["factory"],
        import_path=entry.get("import_path"),
    )


def create_model(name, **kwargs):
    """Builds the registered model `name` (or the builder at import path
    `"package.module:function"`, see `register_model`).

    Keyword arguments go to its factory: the keras.applications arguments
    (`include_top`, `weights`, `input_tensor`, `input_shape`, `pooling`,
    `classes`, `classifier_activation`, `name`) plus `batch_norm_kwargs` and
    the family's own (`hidden_units`, `init_stddev`, `seed` for the MLPs;
    `depth_multiplier`, `stem`, `dropout_rate`, `lrn`, `seed` for Inception).
    """
    return _entry(name)[1]["factory"](**kwargs)
