"""Folding BN into the layer before it (Algorithm 2, step 11).

References: the folded weights against numpy arithmetic on the layers'
variables (a = γ/√(Var+ε), kernel·a, bias·a + b), and the folded model
against the original Keras model in inference mode.
"""

import keras
import numpy as np
import pytest

from bn_zoo import models, population
from bn_zoo.export import fold_batch_normalization, foldable_pairs
from bn_zoo.layers import BatchNormalization

BN_TYPES = (BatchNormalization, keras.layers.BatchNormalization)


def _randomize(model, seed=0, statistics="population"):
    """Non-trivial γ, β and statistics in every BN layer of `model`."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if not isinstance(layer, BN_TYPES):
            continue
        n = layer.moving_mean.shape[0]
        if layer.scale:
            layer.gamma.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
        if layer.center:
            layer.beta.assign(rng.normal(0.0, 0.5, n).astype("float32"))
        layer.moving_mean.assign(rng.normal(0.0, 0.5, n).astype("float32"))
        layer.moving_variance.assign(rng.uniform(0.3, 3.0, n).astype("float32"))
        if isinstance(layer, BatchNormalization):
            layer.population_mean.assign(rng.normal(0.0, 0.5, n).astype("float32"))
            layer.population_variance.assign(rng.uniform(0.3, 3.0, n).astype("float32"))
            layer.inference_statistics = statistics
    for layer in model.layers:
        if getattr(layer, "use_bias", False) and layer.bias is not None:
            layer.bias.assign(rng.normal(0.0, 0.5, layer.bias.shape).astype("float32"))


def _reference_affine(bn):
    """(a, b) of a BN layer from its variables, in float64 numpy."""
    population = getattr(bn, "inference_statistics", "moving") == "population"
    mean = np.asarray(bn.population_mean if population else bn.moving_mean, np.float64)
    var = np.asarray(bn.population_variance if population else bn.moving_variance, np.float64)
    gamma = np.asarray(bn.gamma, np.float64) if bn.scale else 1.0
    beta = np.asarray(bn.beta, np.float64) if bn.center else 0.0
    a = gamma / np.sqrt(var + bn.epsilon)
    return a, beta - a * mean


def _bn_layers(model):
    return [l for l in model.layers if isinstance(l, BN_TYPES)]


def _assert_same_outputs(model, folded, x, atol=1e-5):
    expected = np.asarray(model(x, training=False))
    actual = np.asarray(folded(x, training=False))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)


def _single(layer, input_shape, bn=BatchNormalization, **bn_kwargs):
    inputs = keras.Input(input_shape)
    x = layer(inputs)
    x = bn(name="bn", **bn_kwargs)(x)
    outputs = keras.layers.Activation("relu")(x)
    return keras.Model(inputs, outputs)


CASES = {
    "conv2d_no_bias": (lambda: keras.layers.Conv2D(6, 3, use_bias=False, name="f"), (9, 9, 4)),
    "conv2d_bias": (lambda: keras.layers.Conv2D(6, 3, strides=2, name="f"), (9, 9, 4)),
    "conv1d": (lambda: keras.layers.Conv1D(5, 3, use_bias=False, name="f"), (12, 3)),
    "separable2d": (
        lambda: keras.layers.SeparableConv2D(7, 3, depth_multiplier=2, use_bias=False, name="f"),
        (9, 9, 4),
    ),
    "depthwise2d": (
        lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=3, use_bias=False, name="f"),
        (9, 9, 4),
    ),
    "dense": (lambda: keras.layers.Dense(8, use_bias=False, name="f"), (10,)),
    "dense_bias": (lambda: keras.layers.Dense(8, name="f"), (10,)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("statistics", ["population", "moving", "keras"])
def test_folded_weights_match_numpy(case, statistics):
    make_layer, input_shape = CASES[case]
    bn = keras.layers.BatchNormalization if statistics == "keras" else BatchNormalization
    model = _single(make_layer(), input_shape, bn=bn)
    _randomize(model, seed=len(case), statistics=statistics if statistics != "keras" else "moving")
    source, norm = model.get_layer("f"), model.get_layer("bn")
    a, b = _reference_affine(norm)

    folded = fold_batch_normalization(model)

    assert not _bn_layers(folded)
    target = folded.get_layer("f")
    assert target.use_bias
    if isinstance(source, keras.layers.DepthwiseConv2D):
        kernel = np.asarray(source.kernel, np.float64)
        expected_kernel = kernel * a.reshape(kernel.shape[-2:])
        np.testing.assert_allclose(target.kernel, expected_kernel, rtol=1e-6, atol=1e-7)
    elif isinstance(source, keras.layers.SeparableConv2D):
        np.testing.assert_array_equal(target.depthwise_kernel, source.depthwise_kernel)
        expected_kernel = np.asarray(source.pointwise_kernel, np.float64) * a
        np.testing.assert_allclose(target.pointwise_kernel, expected_kernel, rtol=1e-6, atol=1e-7)
    else:
        expected_kernel = np.asarray(source.kernel, np.float64) * a
        np.testing.assert_allclose(target.kernel, expected_kernel, rtol=1e-6, atol=1e-7)
    bias = np.asarray(source.bias, np.float64) if source.use_bias else 0.0
    np.testing.assert_allclose(target.bias, a * bias + b, rtol=1e-6, atol=1e-6)

    x = np.random.default_rng(1).normal(size=(3, *input_shape)).astype("float32")
    _assert_same_outputs(model, folded, x)


def test_unfoldable_batch_norms_stay_and_outputs_match():
    inputs = keras.Input((8, 8, 3))
    # BN straight on the input: nothing to fold into.
    x = BatchNormalization(name="bn_input")(inputs)
    # Conv output used twice: folding would change the other branch.
    shared = keras.layers.Conv2D(4, 3, padding="same", name="shared")(x)
    y = BatchNormalization(name="bn_shared")(shared)
    z = keras.layers.Add()([shared, y])
    # Nonlinear activation between conv and BN.
    z = keras.layers.Conv2D(4, 3, activation="relu", name="relu_conv")(z)
    z = BatchNormalization(name="bn_after_relu")(z)
    # BN over an axis that is not the conv's output channels.
    z = keras.layers.Conv2D(6, 1, name="conv_axis")(z)
    z = BatchNormalization(axis=1, name="bn_axis1")(z)
    # BN after pooling.
    z = keras.layers.GlobalAveragePooling2D()(z)
    z = BatchNormalization(name="bn_pool")(z)
    # And one that folds.
    z = keras.layers.Dense(5, use_bias=False, name="head")(z)
    outputs = BatchNormalization(name="bn_head")(z)
    model = keras.Model(inputs, outputs)
    _randomize(model, seed=3)

    assert [bn.name for _, bn in foldable_pairs(model).values()] == ["bn_head"]
    folded = fold_batch_normalization(model)

    assert sorted(l.name for l in _bn_layers(folded)) == [
        "bn_after_relu", "bn_axis1", "bn_input", "bn_pool", "bn_shared",
    ]
    x = np.random.default_rng(4).normal(size=(2, 8, 8, 3)).astype("float32")
    _assert_same_outputs(model, folded, x)


def test_conv_feeding_a_model_output_is_not_folded():
    inputs = keras.Input((6,))
    dense = keras.layers.Dense(4, name="dense")(inputs)
    normalized = BatchNormalization(name="bn")(dense)
    model = keras.Model(inputs, [dense, normalized])
    _randomize(model)
    assert not foldable_pairs(model)
    folded = fold_batch_normalization(model)
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    for a, b in zip(model(x, training=False), folded(x, training=False)):
        np.testing.assert_allclose(b, a, atol=1e-6)


def test_input_model_is_left_unchanged():
    make_layer, shape = CASES["conv2d_no_bias"]
    model = _single(make_layer(), shape)
    _randomize(model)
    before = [w.numpy().copy() for w in model.weights]
    folded = fold_batch_normalization(model)
    assert [l.name for l in _bn_layers(model)] == ["bn"]
    assert not model.get_layer("f").use_bias
    for old, w in zip(before, model.weights):
        np.testing.assert_array_equal(np.asarray(w), old)
    # The folded model owns its variables.
    folded.get_layer("f").kernel.assign(np.zeros(folded.get_layer("f").kernel.shape))
    np.testing.assert_array_equal(np.asarray(model.get_layer("f").kernel), before[0])


def test_statistics_choice_is_what_the_layer_uses():
    """Population and moving statistics fold to different weights, each the
    one the BN layer uses in inference (Algorithm 2)."""
    make_layer, shape = CASES["dense"]
    model = _single(make_layer(), shape)
    _randomize(model, statistics="population")
    folded_population = fold_batch_normalization(model)
    model.get_layer("bn").inference_statistics = "moving"
    folded_moving = fold_batch_normalization(model)
    x = np.random.default_rng(5).normal(size=(4, *shape)).astype("float32")
    _assert_same_outputs(model, folded_moving, x)
    model.get_layer("bn").inference_statistics = "population"
    _assert_same_outputs(model, folded_population, x)
    assert not np.allclose(
        folded_moving.get_layer("f").kernel, folded_population.get_layer("f").kernel
    )


def test_sequential_model_folds():
    """keras.Sequential: folded through the functional
    graph of its layers, weights as numpy says, outputs unchanged."""
    model = keras.Sequential([
        keras.Input((6, 6, 3)),
        keras.layers.Conv2D(4, 3, use_bias=False, name="conv"),
        BatchNormalization(name="bn_conv"),
        keras.layers.ReLU(),
        keras.layers.Flatten(),
        keras.layers.Dense(5, name="dense"),
        BatchNormalization(name="bn_dense"),
    ], name="seq")
    _randomize(model, seed=7)
    expected = {name: _reference_affine(model.get_layer(bn))
                for name, bn in (("conv", "bn_conv"), ("dense", "bn_dense"))}

    folded = fold_batch_normalization(model)

    assert folded.name == "seq" and not _bn_layers(folded)
    for name, (a, b) in expected.items():
        source = model.get_layer(name)
        bias = np.asarray(source.bias, np.float64) if source.use_bias else 0.0
        np.testing.assert_allclose(folded.get_layer(name).kernel,
                                   np.asarray(source.kernel, np.float64) * a, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(folded.get_layer(name).bias, a * bias + b, rtol=1e-6, atol=1e-6)
    x = np.random.default_rng(8).normal(size=(3, 6, 6, 3)).astype("float32")
    _assert_same_outputs(model, folded, x)


def test_nested_models_fold_within_their_own_graphs():
    """A functional backbone and a Sequential head nested in a functional
    model: the BN layers inside each fold; the one whose convolution is in
    the outer model (the head's first layer) stays, and outputs match."""
    inner_in = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, use_bias=False, name="backbone_conv")(inner_in)
    h = BatchNormalization(name="backbone_bn")(h)
    backbone = keras.Model(inner_in, keras.layers.ReLU()(h), name="backbone")
    head = keras.Sequential([
        keras.Input((6, 6, 5)),
        BatchNormalization(name="head_input_bn"),  # its producer is outside
        keras.layers.Flatten(),
        keras.layers.Dense(3, use_bias=False, name="head_dense"),
        BatchNormalization(name="head_bn"),
    ], name="head")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(5, 1, name="outer_conv")(backbone(inputs))
    model = keras.Model(inputs, head(x))
    for part in (backbone, head):
        _randomize(part, seed=len(part.name))
    _randomize(model, seed=2)  # the outer conv's bias
    a, b = _reference_affine(backbone.get_layer("backbone_bn"))

    folded = fold_batch_normalization(model)

    names = [l.name for l in folded._flatten_layers() if isinstance(l, BN_TYPES)]
    assert names == ["head_input_bn"]
    np.testing.assert_allclose(
        folded.get_layer("backbone").get_layer("backbone_conv").kernel,
        np.asarray(backbone.get_layer("backbone_conv").kernel, np.float64) * a,
        rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(folded.get_layer("backbone").get_layer("backbone_conv").bias, b,
                               rtol=1e-6, atol=1e-6)
    x = np.random.default_rng(9).normal(size=(2, 8, 8, 3)).astype("float32")
    _assert_same_outputs(model, folded, x)


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)
        self.bn = BatchNormalization()

    def call(self, x, training=None):
        return self.bn(self.dense(x), training=training)


def test_models_whose_graph_cannot_be_read_are_refused():
    top = _Subclassed(name="top")
    top(np.zeros((2, 4), "float32"))
    with pytest.raises(TypeError, match="_Subclassed 'top'.*functional or Sequential"):
        fold_batch_normalization(top)
    inner = _Subclassed(name="inner")
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, inner(inputs), name="outer")
    with pytest.raises(TypeError, match="'inner' nested in model 'outer'"):
        fold_batch_normalization(outer)
    unbuilt = keras.Sequential([keras.layers.Dense(3), BatchNormalization()])
    with pytest.raises(ValueError, match="not built with an input shape"):
        fold_batch_normalization(unbuilt)


def test_zoo_bn_baseline_folds_completely():
    """BN-Baseline (BN after every conv, plus LRN and dropout): every BN
    folds, each conv gains a bias, and inference is unchanged."""
    model = models.create_model(
        "bn_baseline", input_shape=(32, 32, 3), depth_multiplier=0.25, classes=10,
        weights=None,
    )
    rng = np.random.default_rng(0)
    population.estimate(
        model, [rng.uniform(-1, 1, (8, 32, 32, 3)).astype("float32")], num_batches=1
    )
    bns = _bn_layers(model)
    folded = fold_batch_normalization(model)

    assert not _bn_layers(folded)
    assert len(folded.layers) == len(model.layers) - len(bns)
    for bn in bns:
        producer = bn.input._keras_history.operation
        assert folded.get_layer(producer.name).use_bias
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    # The unfolded layers compute (x − E[x])·a + β on the fused kernel, the
    # folded ones x·a + b, with other float32 rounding; through ~60 layers whose
    # variances come from one batch of 8 the probabilities differ by ~2e-5.
    # A wrong fold (wrong statistics or channel) moves them by > 1e-2.
    _assert_same_outputs(model, folded, x, atol=1e-4)


@pytest.mark.parametrize("variant", ["slim", "caffe"])
def test_release_variants_fold_completely(variant):
    """slim's BN has no γ and its stem no BN; Caffe's pads before its
    stride-2 layers: both fold every BN and keep their outputs."""
    model = models.create_model(
        "bn_inception", variant=variant, input_shape=(64, 64, 3), depth_multiplier=0.25,
        classes=10,
    )
    rng = np.random.default_rng(1)
    population.estimate(
        model, [rng.uniform(-1, 1, (8, 64, 64, 3)).astype("float32")], num_batches=1
    )
    folded = fold_batch_normalization(model)
    assert not _bn_layers(folded)
    x = rng.uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    _assert_same_outputs(model, folded, x, atol=1e-4)
