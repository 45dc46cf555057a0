"""The Inception networks of Section 4.2 and Figure 5.

One architecture, `inception(...)`, with plain arguments; the catalogue
(`bn_zoo/models/zoo.py`) registers its five variants of Section 4.2.2 as
models, with these arguments (their factories with `weights=` are in
`bn_zoo.models.factories`):

| model (factory)                | BN | conv bias | activation | LRN | dropout |
|--------------------------------|----|-----------|------------|-----|---------|
| `inception` (`Inception`)      | no | yes       | ReLU       | yes | 0.4     |
| `bn_baseline` (`BNBaseline`)   | yes| no        | ReLU       | yes | 0.4     |
| `bn_inception`, `bn_x5`, `bn_x30` (`BNInception`, `BNx5`, `BNx30`) | yes | no | ReLU | no | 0 |
| `bn_x5_sigmoid` (`BNx5Sigmoid`) | yes| no       | sigmoid    | no  | 0       |

With BN every convolution is `{name}_conv` (no bias) -> `{name}_bn` ->
`{name}_relu` (or `_sigmoid`): BN normalizes the input of every nonlinearity
and sits right after the convolution, so it can be folded into it. Without BN
the convolution has a bias and feeds the activation directly. The classifier
`predictions` is a Dense layer without BN, as in GoogLeNet.

Figure 5, for 224×224×3 inputs (all convolutions and poolings "same"):

    conv1          7×7/2 separable (depth multiplier 8) -> 112×112×64
    pool1          max 3×3/2                            ->  56×56×64
    conv2_reduce   1×1, 64;  conv2  3×3/1, 192          ->  56×56×192
    pool2          max 3×3/2                            ->  28×28×192
    inception_3a ... inception_5b (MODULES)             ->   7×7×1024
    avg_pool       global average                       ->  1024
    predictions    Dense(classes)

The baseline puts LRN where GoogLeNet does: after pool1 (`pool1_lrn`) and
after conv2's activation, before pool2 (`conv2_lrn`).

Errata of the printed Figure 5, resolved as the public Caffe BN-Inception
does, by following the branch columns:
- 3c is strided, so its output is 14×14×576, not the printed 28×28×576.
- 4c and 4d: the columns sum to 160+160+160+128 and 96+192+192+128 = 608
  channels, not the printed 576.
- 4e is strided and receives 608 channels, so its output is
  7×7×(192+256+608) = 7×7×1056, not the printed 14×14×1024.
"""

import collections

import keras
from keras import layers

from bn_zoo import _deprecation
from bn_zoo.layers import BatchNormalization
from bn_zoo.models import common
from bn_zoo.models import inception_variants as variants
from bn_zoo.models.lrn import LocalResponseNormalization

DEFAULT_SIZE = 224
# Five stride-2 stages (conv1, pool1, pool2, 3c, 4e) divide the size by 32;
# below 32 a stage would see a map of size 1.
MIN_SIZE = 32
MIN_DEPTH = 16
STEMS = ("separable", "conv")
ACTIVATIONS = ("relu", "sigmoid")

InceptionModule = collections.namedtuple(
    "InceptionModule",
    [
        "name",
        "conv_1x1",
        "reduce_3x3",
        "conv_3x3",
        "reduce_double_3x3",
        "double_3x3",
        "pool",
        "pool_proj",
        "strides",
    ],
)

# Figure 5. A 0 in conv_1x1 / pool_proj means the branch is absent / the pool
# passes through; branches are concatenated in this order: 1×1, 3×3,
# double 3×3, pool.
MODULES = (
    InceptionModule("3a", 64, 64, 64, 64, 96, "avg", 32, 1),
    InceptionModule("3b", 64, 64, 96, 64, 96, "avg", 64, 1),
    InceptionModule("3c", 0, 128, 160, 64, 96, "max", 0, 2),
    InceptionModule("4a", 224, 64, 96, 96, 128, "avg", 128, 1),
    InceptionModule("4b", 192, 96, 128, 96, 128, "avg", 128, 1),
    InceptionModule("4c", 160, 128, 160, 128, 160, "avg", 128, 1),
    InceptionModule("4d", 96, 128, 192, 160, 192, "avg", 128, 1),
    InceptionModule("4e", 0, 128, 192, 192, 256, "max", 0, 2),
    InceptionModule("5a", 352, 192, 320, 160, 224, "avg", 128, 1),
    InceptionModule("5b", 352, 192, 320, 192, 224, "max", 128, 1),
)


class _Builder:
    """Creates the layers of one network with its variant's choices."""

    def __init__(self, batch_norm, activation, bn_kwargs, depth_multiplier, seed,
                 variant):
        self.batch_norm = batch_norm
        self.activation = activation
        self.bn_kwargs = bn_kwargs
        self.depth_multiplier = depth_multiplier
        self.seed = seed
        self.variant = variant
        self._layers = 0

    def depth(self, filters):
        """Filters after `depth_multiplier`, never below MIN_DEPTH (as slim)."""
        return max(int(filters * self.depth_multiplier), MIN_DEPTH)

    def initializer(self):
        self._layers += 1
        seed = None if self.seed is None else self.seed + self._layers
        return keras.initializers.GlorotUniform(seed=seed)

    def normalize_and_activate(self, x, name, batch_norm=None):
        if self.batch_norm if batch_norm is None else batch_norm:
            x = BatchNormalization(**self.bn_kwargs, name=f"{name}_bn")(x)
        return layers.Activation(self.activation, name=f"{name}_{self.activation}")(x)

    def _padding(self, x, kernel_size, strides, name):
        """Caffe pads stride-2 convolutions by k//2 on every side, where TF's
        "same" pads the end more; returns (input, padding) to use."""
        if strides == 1 or not self.variant.caffe_padding:
            return x, "same"
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        return x, "valid"

    def conv(self, x, filters, kernel_size, name, strides=1):
        x, padding = self._padding(x, kernel_size, strides, name)
        x = layers.Conv2D(
            self.depth(filters),
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=not self.batch_norm,
            kernel_initializer=self.initializer(),
            name=f"{name}_conv",
        )(x)
        return self.normalize_and_activate(x, name)

    def separable_conv(self, x, filters, kernel_size, name, strides):
        filters = self.depth(filters)
        # slim's inception_v2: multiplier min(filters / channels, 8).
        multiplier = max(1, min(filters // x.shape[-1], 8))
        batch_norm = self.batch_norm and self.variant.stem_batch_norm
        x, padding = self._padding(x, kernel_size, strides, name)
        x = layers.SeparableConv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            depth_multiplier=multiplier,
            use_bias=not batch_norm,
            depthwise_initializer=self.initializer(),
            pointwise_initializer=self.initializer(),
            name=f"{name}_conv",
        )(x)
        return self.normalize_and_activate(x, name, batch_norm)

    def max_pool(self, x, strides, name):
        """3×3 max pooling. Caffe rounds the output size up with no padding,
        which is one extra row and column at the end: zeros are exact there
        because every max pool here follows a ReLU or sigmoid (never < 0)."""
        if strides == 2 and self.variant.caffe_padding:
            x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
            return layers.MaxPooling2D(3, strides=2, padding="valid", name=name)(x)
        return layers.MaxPooling2D(3, strides=strides, padding="same", name=name)(x)

    def avg_pool(self, x, name):
        """3×3/1 average pooling: TF averages the valid values only, Caffe
        counts the zero padding."""
        if self.variant.caffe_padding:
            x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
            return layers.AveragePooling2D(3, strides=1, padding="valid", name=name)(x)
        return layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)

    def module(self, x, spec):
        prefix = f"inception_{spec.name}"
        spec = spec._replace(
            pool_proj=self.variant.pool_proj_widths.get(spec.name, spec.pool_proj)
        )
        branches = []
        if spec.conv_1x1:
            branches.append(self.conv(x, spec.conv_1x1, 1, f"{prefix}_1x1"))
        b = self.conv(x, spec.reduce_3x3, 1, f"{prefix}_3x3_reduce")
        branches.append(
            self.conv(b, spec.conv_3x3, 3, f"{prefix}_3x3", strides=spec.strides)
        )
        b = self.conv(x, spec.reduce_double_3x3, 1, f"{prefix}_double_3x3_reduce")
        b = self.conv(b, spec.double_3x3, 3, f"{prefix}_double_3x3_1")
        branches.append(
            self.conv(
                b, spec.double_3x3, 3, f"{prefix}_double_3x3_2", strides=spec.strides
            )
        )
        if spec.pool == "max":
            b = self.max_pool(x, spec.strides, f"{prefix}_pool")
        else:
            b = self.avg_pool(x, f"{prefix}_pool")
        if spec.pool_proj:
            b = self.conv(b, spec.pool_proj, 1, f"{prefix}_pool_proj")
        branches.append(b)
        return layers.Concatenate(axis=-1, name=f"{prefix}_concat")(branches)


def inception(
    batch_norm=True,
    activation=None,
    include_top=True,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    batch_norm_kwargs=None,
    depth_multiplier=1.0,
    stem=None,
    dropout_rate=None,
    lrn=None,
    seed=None,
    variant=None,
    features=None,
    include_preprocessing=False,
    preprocessing=None,
):
    """The Inception network of Figure 5, with or without BN, in any variant.

    Plain arguments, random weights: the catalogue's models
    (`bn_zoo.create_model("bn_x5")`, `bn_zoo.models.BNx5`, ...) call it with
    their own `batch_norm`, `activation`, `dropout_rate` and `lrn` (those of
    their recipe) and load `weights=` into the result.

    Args:
        batch_norm: Whether BN sits between every convolution and its
            nonlinearity (the convolutions then have no bias).
        activation: "relu" or "sigmoid" after every convolution; None: "relu".
        include_top: Whether to include global average pooling, dropout and
            the classifier `predictions`.
        input_tensor: Optional Keras tensor to use as the image input.
        input_shape: (height, width, channels), each side >= 32; default
            (224, 224, 3). With include_top=False the sides may be None.
        pooling: With include_top=False: None (the 4-D output of 5b),
            "avg" or "max" (global pooling to 2-D).
        classes: Number of classes of the classifier.
        classifier_activation: Activation of `predictions`; None for logits.
        name: Name of the model; None: "bn_inception" with BN, else
            "inception".
        batch_norm_kwargs: Dict merged into every BatchNormalization layer,
            e.g. {"momentum": 0.9, "synchronized": True}. Ignored without BN.
        depth_multiplier: Scales every convolution's filters (at least 16
            each, as slim); 1.0 is the paper's network.
        stem: "separable" (the paper's 7×7 separable convolution, depth
            multiplier 8) or "conv" (a plain 7×7 convolution); None takes
            the variant's.
        dropout_rate: Dropout before the classifier; None: 0.
        lrn: Whether to use local response normalization; None: False.
        seed: Optional integer seed of the initializers.
        variant: "paper" (Figure 5, None), "slim" (TF-slim's inception_v2)
            or "caffe" (the Caffe BN-Inception); see `inception_variants`.
        features: None for the usual model; "pyramid" or a list of end-point
            names (`inception_variants.end_points(variant)`) for a model
            whose output is {name: block output}, with include_top=False
            and pooling=None (`feature_names`, `feature_model`).
        include_preprocessing: Whether the model scales its input itself (a
            `PreprocessInput` layer named "preprocessing"), so that it takes
            raw 0-255 RGB pixels.
        preprocessing: The mode of that layer; None: the variant's.

    Returns:
        A `keras.Model`.

    Raises:
        TypeError, ValueError: an argument out of its range, named with the
            value received and what to pass instead.
    """
    common.check_common_arguments(include_top, pooling, classes, classifier_activation)
    variant = variants.get("paper" if variant is None else variant)
    if name is None:
        name = "bn_inception" if batch_norm else "inception"
    if variant.name != "paper" and not batch_norm:
        raise ValueError(
            f"`variant={variant.name!r}` is a BN-Inception network; "
            f"{name!r} has no BN. Use a BN model such as 'bn_inception'."
        )
    stem = variant.stem if stem is None else stem
    activation = "relu" if activation is None else activation
    bn_kwargs = {**variant.batch_norm, **common.check_batch_norm_kwargs(batch_norm_kwargs)}
    if isinstance(depth_multiplier, bool) or not depth_multiplier > 0:
        raise ValueError(
            f"`depth_multiplier` must be > 0 (1.0 is the paper's network). "
            f"Received: depth_multiplier={depth_multiplier!r}"
        )
    if stem not in STEMS:
        raise ValueError(
            f"`stem` must be one of {STEMS}: 'separable' is the paper's 7×7 "
            f"separable convolution, 'conv' a plain 7×7. Received: stem={stem!r}"
        )
    if activation not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {ACTIVATIONS}.")
    dropout_rate = 0.0 if dropout_rate is None else dropout_rate
    lrn = False if lrn is None else lrn
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(
            f"`dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate!r}"
        )
    if not isinstance(lrn, bool):
        raise TypeError(f"`lrn` must be True or False. Received: lrn={lrn!r}")
    points = _check_features(features, variant, include_top, pooling)
    input_shape = common.image_input_shape(
        input_shape, input_tensor, DEFAULT_SIZE, MIN_SIZE, include_top
    )
    if variant.caffe_padding:
        _check_caffe_size(input_shape)
    img_input, inputs = common.model_input(input_tensor, input_shape)

    x = common.preprocessing(
        img_input, include_preprocessing, preprocessing or variant.preprocessing
    )
    build = _Builder(batch_norm, activation, bn_kwargs, depth_multiplier, seed, variant)
    if stem == "separable":
        x = build.separable_conv(x, 64, 7, "conv1", strides=2)
    else:
        x = build.conv(x, 64, 7, "conv1", strides=2)
    x = build.max_pool(x, 2, "pool1_pool")
    if lrn:
        x = LocalResponseNormalization(name="pool1_lrn")(x)
    x = build.conv(x, 64, 1, "conv2_reduce")
    x = build.conv(x, 192, 3, "conv2")
    if lrn:
        x = LocalResponseNormalization(name="conv2_lrn")(x)
    x = build.max_pool(x, 2, "pool2_pool")
    for spec in MODULES:
        x = build.module(x, spec)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_initializer=build.initializer(),
            name="predictions",
        )(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    model = keras.Model(inputs, x, name=name)
    return feature_model(model, points, variant.name) if points else model


def feature_names(requested, variant=None, include_top=True, pooling=None, **_):
    """The end points that `requested` (a `features` argument) asks for,
    checked: a tuple, empty for None.

    Takes all of the model's arguments and ignores those it does not need, so
    that `bn_zoo.models.hub` can check `features` before it builds anything.

    Raises:
        TypeError, ValueError: see `inception`'s `features`.
    """
    variant = variants.get("paper" if variant is None else variant)
    return _check_features(requested, variant, include_top, pooling)


def feature_model(model, names, variant=None, **_):
    """A model whose output is {end point: block output} of the built
    Inception `model`, for the end points `names` of `variant`. It shares
    `model`'s layers, so weights loaded into `model` are its weights."""
    points = variants.end_points("paper" if variant is None else variant)
    outputs = {n: model.get_layer(points[n]).output for n in names}
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=model.name)


def _check_features(features, variant, include_top, pooling):
    """The end-point names `features` asks for (a tuple; empty for None)."""
    if features is None:
        return ()
    if include_top or pooling is not None:
        raise ValueError(
            "`features` returns block outputs, not the classifier: pass "
            "include_top=False and pooling=None with it."
        )
    points = variants.end_points(variant.name)
    if features == "pyramid":
        return variants.PYRAMID[variant.name]
    if isinstance(features, str) or not all(isinstance(f, str) for f in features):
        raise TypeError(
            "`features` must be None, 'pyramid' or a list of end-point names, "
            f"e.g. {list(variants.PYRAMID[variant.name])}. Received: {features!r}"
        )
    unknown = [f for f in features if f not in points]
    if unknown or not features:
        raise ValueError(
            f"Unknown end points {unknown} for variant {variant.name!r}; it has "
            f"{list(points)}."
        )
    return tuple(features)


def _check_caffe_size(input_shape):
    """Caffe's stride-2 modules (3c, 4e) concatenate a padded convolution
    (n + 1) // 2 wide and a ceil-mode pool (n - 1) // 2 wide, which agree
    only on even sides: the sides must reach 3c and 4e even."""
    for side in input_shape[:2]:
        if side is None:
            continue
        n = (side - 1) // 2 + 1  # conv1: 7×7/2, padding 3
        n = (n - 2) // 2 + 1  # pool1: 3×3/2, ceil mode
        n = (n - 2) // 2 + 1  # pool2
        if n % 2 or (n // 2) % 2:
            raise ValueError(
                f"The Caffe BN-Inception cannot take a side of {side}: its "
                "modules 3c and 4e need even sides at their inputs (a side of "
                f"{side} gives {n} at 3c). Use a multiple of 32, e.g. 224."
            )


# The factories with `weights=` (`BNInception`, ...) load weights files, which
# an architecture does not: they live in `bn_zoo.models.factories`.
_deprecation.alias(__name__, {
    factory: f"bn_zoo.models.factories:{factory}"
    for factory in ("Inception", "BNBaseline", "BNInception", "BNx5", "BNx30", "BNx5Sigmoid")
})
