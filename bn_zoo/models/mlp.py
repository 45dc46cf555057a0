"""The MNIST networks of Section 4.1: a sigmoid MLP, with and without BN.

"We used a very simple network, with a 28x28 binary image as input, and 3
fully-connected hidden layers with 100 activations each. Each hidden layer
computes y = g(Wu + b) with sigmoid nonlinearity, and the weights W
initialized to small random Gaussian values. The last hidden layer is followed
by a fully-connected layer with 10 activations (one per class)."

The BN network normalizes the input of every hidden nonlinearity, x = Wu, and
drops the bias b, whose role β takes over (Section 3.2):

    hidden{i}_dense (no bias) -> hidden{i}_bn -> hidden{i}_sigmoid

In both networks the sigmoid is its own `Activation` layer, so
`model.get_layer("hidden3_sigmoid").input` is the input x of the last hidden
nonlinearity whose distribution Figure 1(b, c) follows.

"Small random Gaussian" is not quantified by the paper: bn_zoo draws every
kernel from N(0, 0.1²) (`init_stddev`). With inputs in [0, 1] this gives the
first layer pre-activations of standard deviation about 0.5 to 1, in the
sigmoid's non-saturated range; biases start at zero.
"""

import keras
from keras import layers

from bn_zoo import _deprecation
from bn_zoo.layers import BatchNormalization
from bn_zoo.models import common

DEFAULT_INPUT_SHAPE = (28, 28, 1)
HIDDEN_UNITS = (100, 100, 100)
INIT_STDDEV = 0.1


def mlp(
    batch_norm=True,
    include_top=True,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name=None,
    batch_norm_kwargs=None,
    hidden_units=HIDDEN_UNITS,
    init_stddev=INIT_STDDEV,
    seed=None,
    include_preprocessing=False,
    preprocessing=None,
):
    """The sigmoid MLP of Section 4.1, with or without Batch Normalization.

    With BN each hidden layer is `hidden{i}_dense` (no bias) -> `hidden{i}_bn`
    -> `hidden{i}_sigmoid`: BN normalizes the input of every nonlinearity.
    Without it, `hidden{i}_dense` (with bias) -> `hidden{i}_sigmoid`. The
    model has random weights: `bn_zoo.create_model("mlp" | "bn_mlp", ...)`
    (or `bn_zoo.models.MLP`, `BNMLP`) also loads `weights=`.

    Args:
        batch_norm: Whether to normalize the input of every sigmoid.
        include_top: Whether to include the classifier `predictions`.
            Without it the model returns the last hidden layer's output.
        input_tensor: Optional Keras tensor to use as the model's input.
        input_shape: Optional shape of one example, default (28, 28, 1); any
            fully known shape is flattened.
        pooling: Must be None (kept for the keras.applications signature).
        classes: Number of classes of the classifier.
        classifier_activation: Activation of `predictions`; None for logits.
        name: Name of the model; None: "bn_mlp" with BN, else "mlp".
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
        preprocessing: The mode of that layer; None: "mnist".

    Returns:
        A `keras.Model`.

    Raises:
        TypeError, ValueError: an argument out of its range, named with the
            value received.
    """
    common.check_common_arguments(include_top, pooling, classes, classifier_activation)
    if pooling is not None:
        raise ValueError(
            "The MLP has no spatial feature map to pool; `pooling` must be None. "
            f"Received: pooling={pooling!r}"
        )
    bn_kwargs = common.check_batch_norm_kwargs(batch_norm_kwargs)
    hidden_units = tuple(hidden_units)
    if not hidden_units or any(
        isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in hidden_units
    ):
        raise ValueError(
            "`hidden_units` must be a non-empty sequence of positive integers. "
            f"Received: hidden_units={hidden_units!r}"
        )
    if not init_stddev > 0:
        raise ValueError(f"`init_stddev` must be > 0. Received: {init_stddev!r}")
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    input_shape = tuple(DEFAULT_INPUT_SHAPE if input_shape is None else input_shape)
    if not input_shape or any(
        d is None or isinstance(d, bool) or not isinstance(d, int) or d < 1
        for d in input_shape
    ):
        raise ValueError(
            "The MLP needs a fully known input shape (it is flattened into a "
            f"fixed number of features). Received: input_shape={input_shape}"
        )

    def kernel_initializer(index):
        # A distinct seed per layer, so that layers do not share weights.
        layer_seed = None if seed is None else seed + index
        return keras.initializers.RandomNormal(stddev=init_stddev, seed=layer_seed)

    img_input, inputs = common.model_input(input_tensor, input_shape)
    x = common.preprocessing(img_input, include_preprocessing, preprocessing or "mnist")
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(hidden_units, start=1):
        x = layers.Dense(
            units,
            use_bias=not batch_norm,
            kernel_initializer=kernel_initializer(i),
            name=f"hidden{i}_dense",
        )(x)
        if batch_norm:
            x = BatchNormalization(**bn_kwargs, name=f"hidden{i}_bn")(x)
        x = layers.Activation("sigmoid", name=f"hidden{i}_sigmoid")(x)
    if include_top:
        x = layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_initializer=kernel_initializer(0),
            name="predictions",
        )(x)
    if name is None:
        name = "bn_mlp" if batch_norm else "mlp"
    return keras.Model(inputs, x, name=name)


# The factories with `weights=` (`MLP`, `BNMLP`) load weights files, which an
# architecture does not: they live in `bn_zoo.models.factories`.
_deprecation.alias(__name__, {
    "MLP": "bn_zoo.models.factories:MLP",
    "BNMLP": "bn_zoo.models.factories:BNMLP",
})
