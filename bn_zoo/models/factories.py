"""The zoo's models as `keras.applications`-style factories.

`bn_zoo.models.BNInception(weights=..., ...)` is
`bn_zoo.create_model("bn_inception", weights=..., ...)`, with the
`keras.applications` signature spelled out: each factory hands its arguments
to `hub.create_model`, which builds the catalogued model and loads its
weights.
"""

import inspect

from bn_zoo.models import hub
from bn_zoo.models.inception import inception
from bn_zoo.models.mlp import mlp


# Arguments of an architecture that its catalogue entry fixes (BN or not,
# the input scaling a weights file implies): no factory takes them.
_FIXED_BY_THE_CATALOGUE = ("batch_norm", "preprocessing")


def _factory_signature(architecture, model_name):
    """The `keras.applications` signature over `architecture`'s arguments:
    `include_top, weights=None`, then the architecture's own arguments less
    those the catalogue fixes, `name` defaulting to `model_name`."""
    parameters = [p for p in inspect.signature(architecture).parameters.values()
                  if p.name not in _FIXED_BY_THE_CATALOGUE]
    first = [p for p in parameters if p.name == "include_top"]
    rest = [p.replace(default=model_name) if p.name == "name" else p
            for p in parameters if p.name != "include_top"]
    weights = inspect.Parameter("weights", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                default=None)
    return inspect.Signature([*first, weights, *rest])


def _factory(function_name, model_name, architecture, doc):
    """A function with `_factory_signature(architecture, model_name)` that
    calls `hub.create_model(model_name, ...)`."""
    signature = _factory_signature(architecture, model_name)

    def factory(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return hub.create_model(model_name, **bound.arguments)

    factory.__signature__ = signature
    factory.__doc__ = doc
    factory.__name__ = factory.__qualname__ = function_name
    return factory


def _inception_factory(function_name, model_name, summary):
    return _factory(function_name, model_name, inception, summary + _INCEPTION_ARGS)


def _mlp_factory(function_name, model_name, summary):
    return _factory(function_name, model_name, mlp, summary + _MLP_ARGS)


_INCEPTION_ARGS = """

    Args:
        include_top: Whether to include global average pooling, dropout and
            the classifier `predictions`.
        weights: None (random initialization), a registered name (see
            `bn_zoo.model_info(name).weights`) or the path to a
            `.weights.h5` file.
        activation: "relu" or "sigmoid" after every convolution; None takes
            the model's (e.g. Inception with "sigmoid" is the network
            without BN that Section 4.2.2 says never trains).
        input_tensor: Optional Keras tensor to use as the image input.
        input_shape: (height, width, channels), each side >= 32; default
            (224, 224, 3). With include_top=False the sides may be None.
        pooling: With include_top=False: None (the 4-D output of 5b),
            "avg" or "max" (global pooling to 2-D).
        classes: Number of classes of the classifier.
        classifier_activation: Activation of `predictions`; None for logits.
        name: Name of the model.
        batch_norm_kwargs: Dict merged into every BatchNormalization layer,
            e.g. {"momentum": 0.9, "synchronized": True}. Ignored without BN.
        depth_multiplier: Scales every convolution's filters (at least 16
            each, as slim); 1.0 is the paper's network.
        stem: "separable" (the paper's 7×7 separable convolution, depth
            multiplier 8) or "conv" (a plain 7×7 convolution); None takes
            the variant's.
        dropout_rate: Dropout before the classifier; None takes the recipe's
            (`bn_zoo.model_info(name).recipe["dropout_rate"]`).
        lrn: Whether to use local response normalization; None takes the
            recipe's.
        seed: Optional integer seed of the initializers.
        variant: "paper" (Figure 5), "slim" (TF-slim's inception_v2) or
            "caffe" (the Caffe BN-Inception); see
            `bn_zoo.models.inception_variants`. None: the registered
            weights' variant, else "paper". Registered weights fix the
            variant, stem and width, and refuse other values.
        features: None for the usual model; "pyramid" or a list of end-point
            names (`inception_variants.end_points(variant)`) for a model
            whose output is {name: block output}, with include_top=False.
            "pyramid" is the outputs at strides 8, 16 and 32 (slim:
            Mixed_3c, Mixed_4e, Mixed_5c; Caffe: inception_3b_output,
            inception_4d_output, inception_5b_output).
        include_preprocessing: Whether the model scales its input itself (a
            `PreprocessInput` layer named "preprocessing", with the mode of
            the registered weights or the variant), so that it takes raw 0-255
            RGB pixels; default False: inputs scaled by
            `bn_zoo.preprocess_input(x, model=name, weights=weights)`.

    Returns:
        A `keras.Model`.
"""
_MLP_ARGS = """

    Args:
        include_top: Whether to include the 10-way classifier `predictions`.
            Without it the model returns the last hidden layer's output.
        weights: None (random initialization), a registered name (see
            `bn_zoo.model_info(name).weights`) or the path to a
            `.weights.h5` file.
        input_tensor: Optional Keras tensor to use as the model's input.
        input_shape: Optional shape of one example, default (28, 28, 1); any
            fully known shape is flattened.
        pooling: Must be None (kept for the keras.applications signature).
        classes: Number of classes of the classifier.
        classifier_activation: Activation of `predictions`; None for logits.
        name: Name of the model.
        batch_norm_kwargs: Dict merged into every BatchNormalization layer,
            e.g. {"momentum": 0.9}. Ignored by the network without BN, so one
            configuration can build both.
        hidden_units: Units of each hidden layer, default (100, 100, 100).
            Layers are named hidden1_*, hidden2_*, ...
        init_stddev: Standard deviation of the Gaussian kernel initializer.
        seed: Optional integer seed of the initializers.
        include_preprocessing: Whether the model scales its input itself
            (a `PreprocessInput` layer named "preprocessing"), so that it
            takes raw 0-255 pixels; default False: inputs scaled by
            `bn_zoo.preprocess_input(x, model=name)` (x / 255).

    Returns:
        A `keras.Model`.
"""

Inception = _inception_factory(
    "Inception", "inception",
    "The Inception baseline (Figure 5 without BN): conv biases, ReLU, LRN as in "
    "GoogLeNet, dropout 0.4.",
)
BNBaseline = _inception_factory(
    "BNBaseline", "bn_baseline",
    "BN-Baseline: Inception with BN before every nonlinearity and no conv "
    "biases, nothing else changed (LRN and dropout 0.4 stay).",
)
BNInception = _inception_factory(
    "BNInception", "bn_inception",
    "BN-Inception: BN before every nonlinearity, no LRN, no dropout "
    "(Section 4.2.1).",
)
BNx5 = _inception_factory(
    "BNx5", "bn_x5",
    "BN-x5: the BN-Inception network, registered with the 5x learning rate "
    "recipe.",
)
BNx30 = _inception_factory(
    "BNx30", "bn_x30",
    "BN-x30: the BN-Inception network, registered with the 30x learning rate "
    "recipe.",
)
BNx5Sigmoid = _inception_factory(
    "BNx5Sigmoid", "bn_x5_sigmoid",
    "BN-x5-Sigmoid: BN-x5 with sigmoid instead of ReLU.",
)
MLP = _mlp_factory(
    "MLP", "mlp",
    "The sigmoid MLP of Section 4.1 without Batch Normalization.\n\n"
    "    Each hidden layer is `hidden{i}_dense` (with bias) -> `hidden{i}_sigmoid`.\n",
)
BNMLP = _mlp_factory(
    "BNMLP", "bn_mlp",
    "The sigmoid MLP of Section 4.1 with Batch Normalization.\n\n"
    "    Each hidden layer is `hidden{i}_dense` (no bias) -> `hidden{i}_bn` ->\n"
    "    `hidden{i}_sigmoid`: BN normalizes the input of every nonlinearity.\n",
)
