"""`bn_zoo.layers.convert_batch_normalization` on Keras models built with
`keras.layers.BatchNormalization`. The references are
the original models running Keras' own layer, and numpy."""

import keras
import numpy as np
import pytest

from bn_zoo import population
from bn_zoo.layers import BatchNormalization, convert_batch_normalization

SIZE = 32
RNG = np.random.default_rng(5)
X = RNG.normal(0, 1, (8, SIZE, SIZE, 3)).astype("float32")


def keras_bns(model):
    return [l for l in model._flatten_layers() if type(l) is keras.layers.BatchNormalization]


def randomize(model, seed):
    """Random γ, β and moving statistics in every Keras BN layer."""
    rng = np.random.default_rng(seed)
    for layer in keras_bns(model):
        c = layer.moving_mean.shape
        if layer.scale:
            layer.gamma.assign(rng.uniform(0.5, 1.5, c))
        if layer.center:
            layer.beta.assign(rng.normal(0, 0.5, c))
        layer.moving_mean.assign(rng.normal(0, 0.5, c))
        layer.moving_variance.assign(rng.uniform(0.5, 2.0, c))
    return model


def mobilenet():
    return keras.applications.MobileNetV2(
        input_shape=(SIZE, SIZE, 3), alpha=0.35, weights=None, classes=5,
        classifier_activation=None)


@pytest.fixture(scope="module")
def mobilenets():
    original = randomize(mobilenet(), 0)
    return original, convert_batch_normalization(original)


def test_every_keras_bn_is_replaced_with_its_arguments(mobilenets):
    original, converted = mobilenets
    old = keras_bns(original)
    new = population.batch_normalization_layers(converted)
    assert len(old) == 52 and not keras_bns(converted)
    assert [l.name for l in new] == [l.name for l in old]
    assert [l.name for l in converted.layers] == [l.name for l in original.layers]
    for before, after in zip(old, new):
        assert type(after) is BatchNormalization
        assert (after.axis, after.momentum, after.epsilon) == (
            before.axis, before.momentum, before.epsilon)
        assert after.variance_correction == "biased"
        assert after.inference_statistics == "moving"
        for name in ("gamma", "beta", "moving_mean", "moving_variance"):
            np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
        np.testing.assert_array_equal(after.population_mean, before.moving_mean)
        np.testing.assert_array_equal(after.population_variance, before.moving_variance)
    # No variable is shared with the original.
    ids = {id(v) for v in original.weights}
    assert not any(id(v) in ids for v in converted.weights)


def test_inference_outputs_equal_the_originals(mobilenets):
    original, converted = mobilenets
    expected = np.asarray(original(X, training=False))
    atol = 1e-5 * np.abs(expected).max()
    np.testing.assert_allclose(converted.predict(X, verbose=0), expected, rtol=1e-5, atol=atol)
    np.testing.assert_allclose(converted(X, training=False), expected, rtol=1e-5, atol=atol)


def small_convnet():
    """Conv → BN → ReLU → depthwise → BN → pool → dense → BN, Keras' layer."""
    inputs = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(6, 3, use_bias=False)(inputs)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.8)(h))
    h = keras.layers.DepthwiseConv2D(3, use_bias=False)(h)
    h = keras.layers.BatchNormalization(center=False)(h)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(h))
    h = keras.layers.BatchNormalization(scale=False)(keras.layers.Dense(5)(h))
    return randomize(keras.Model(inputs, h), 1)


def test_a_training_step_equals_keras_layers_step():
    """With the default biased variance, one SGD step of the converted model
    moves every weight and moving statistic as Keras' layer does."""
    original = small_convnet()
    converted = convert_batch_normalization(original)
    before = {w.path: np.asarray(w) for w in original.weights}
    x = RNG.normal(1, 2, (16, 12, 12, 3)).astype("float32")
    y = RNG.integers(0, 5, len(x))
    for model in (original, converted):
        model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        model.fit(x, y, batch_size=len(x), shuffle=False, verbose=0)
    after = {w.path: w for w in converted.weights}
    for w in original.weights:
        expected = np.asarray(w)
        assert not np.array_equal(expected, before[w.path]), w.path  # It trained.
        np.testing.assert_allclose(after[w.path], expected, rtol=1e-4, atol=1e-6,
                                   err_msg=w.path)


def test_population_estimate_runs_on_the_converted_model(mobilenets):
    original, _ = mobilenets
    converted = convert_batch_normalization(original)
    halves = [X[:4], X[4:]]
    assert population.estimate(converted, halves, 2) == 52
    # The first BN's input is Conv1's output; Keras' biased variance, as the
    # converted layers keep it.
    probe = keras.Model(original.input, original.get_layer("Conv1").output)
    inputs = [np.asarray(probe(h), np.float64) for h in halves]
    first = converted.get_layer("bn_Conv1")
    np.testing.assert_allclose(first.population_mean,
                               np.mean([h.mean(axis=(0, 1, 2)) for h in inputs], 0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first.population_variance,
                               np.mean([h.var(axis=(0, 1, 2)) for h in inputs], 0),
                               rtol=1e-5, atol=1e-6)
    assert first.inference_statistics == "population"
    assert not np.allclose(converted(X), original(X))


def test_unbiased_variance_correction_for_later_updates():
    inputs = keras.Input((4,))
    original = keras.Model(inputs, keras.layers.BatchNormalization(momentum=0.5)(inputs))
    randomize(original, 2)
    converted = convert_batch_normalization(original, variance_correction="unbiased")
    layer = converted.layers[-1]
    assert layer.variance_correction == "unbiased"
    before = np.asarray(layer.moving_variance, np.float64)
    x = RNG.normal(3, 2, (6, 4))
    converted(x.astype("float32"), training=True)
    np.testing.assert_allclose(layer.moving_variance, 0.5 * before + 0.5 * x.var(0, ddof=1),
                               rtol=1e-5)


def test_resnet50():
    """ResNet50 at 32×32 (53 BN layers, 25M weights), random statistics."""
    original = randomize(keras.applications.ResNet50(
        input_shape=(SIZE, SIZE, 3), weights=None, classes=5,
        classifier_activation=None), 3)
    converted = convert_batch_normalization(original)
    assert len(population.batch_normalization_layers(converted)) == 53
    assert not keras_bns(converted)
    expected = np.asarray(original(X[:2], training=False))
    np.testing.assert_allclose(converted(X[:2], training=False), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())


def test_a_keras_weights_file_loads_into_the_converted_architecture(mobilenets, tmp_path):
    """A `.weights.h5` saved by the architecture with Keras' layer (4 variables
    per BN) loads into the same architecture with ours (8)."""
    original, _ = mobilenets
    path = str(tmp_path / "keras_bn.weights.h5")
    original.save_weights(path)
    target = convert_batch_normalization(mobilenet())
    target.load_weights(path)
    expected = np.asarray(original(X))
    np.testing.assert_allclose(target(X), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())
    for before, after in zip(keras_bns(original), population.batch_normalization_layers(target)):
        np.testing.assert_array_equal(after.moving_variance, before.moving_variance)
        np.testing.assert_array_equal(after.population_variance, before.moving_variance)
        np.testing.assert_array_equal(after.gamma, before.gamma)


def test_a_keras_weights_file_with_other_shapes_is_refused(tmp_path):
    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs)).save_weights(
        tmp_path / "three.weights.h5")
    inputs = keras.Input((4,))
    ours = keras.Model(inputs, BatchNormalization(name="bn")(inputs))
    before = [np.asarray(w) for w in ours.weights]
    with pytest.raises(ValueError, match="bn"):
        ours.load_weights(tmp_path / "three.weights.h5")
    for w, value in zip(ours.weights, before):
        np.testing.assert_array_equal(w, value)


def nested_model():
    """A functional model holding a nested functional block (called twice:
    shared), a Sequential with a BN, and one BN layer shared by two calls."""
    block_in = keras.Input((8, 8, 4))
    h = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(block_in)
    h = keras.layers.BatchNormalization(name="block_bn")(h)
    block = keras.Model(block_in, keras.layers.ReLU()(h), name="block")
    sequential = keras.Sequential(
        [keras.Input((8, 8, 4)), keras.layers.Conv2D(4, 1),
         keras.layers.BatchNormalization(name="seq_bn")], name="seq")
    shared_bn = keras.layers.BatchNormalization(name="shared_bn")
    inputs = keras.Input((8, 8, 4))
    a = shared_bn(block(block(inputs)))
    b = shared_bn(sequential(inputs))
    outputs = keras.layers.Add()([a, b])
    return randomize(keras.Model(inputs, outputs), 4)


def test_nested_models_and_shared_layers_convert(tmp_path):
    original = nested_model()
    converted = convert_batch_normalization(original)
    x = RNG.normal(0, 1, (4, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(converted(x), original(x), rtol=1e-5, atol=1e-5)
    assert not keras_bns(converted)
    names = sorted(l.name for l in population.batch_normalization_layers(converted))
    assert names == ["block_bn", "seq_bn", "shared_bn"]
    # Shared stays shared: one layer called twice, one block called twice.
    assert len(converted.get_layer("shared_bn")._inbound_nodes) == 2
    block = converted.get_layer("block")
    assert isinstance(block.get_layer("block_bn"), BatchNormalization)
    assert isinstance(converted.get_layer("seq").layers[-1], BatchNormalization)
    # Training statistics flow into the one shared layer, as in the original.
    assert population.estimate(converted, [x], 1) == 3
    path = tmp_path / "nested.keras"
    converted.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x), converted(x), rtol=1e-6, atol=1e-6)


class KerasBNSubclass(keras.layers.BatchNormalization):
    pass


class BlockLayer(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Dense(4)
        self.bn = keras.layers.BatchNormalization()

    def call(self, x):
        return self.bn(self.conv(x))


class SubclassedModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.bn = keras.layers.BatchNormalization()

    def call(self, x):
        return self.bn(x)


def functional(layer, shape=(4,)):
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: functional(BlockLayer(name="block")), ValueError,
         r"'block' \(BlockLayer\) contains keras.layers.BatchNormalization"),
        (lambda: functional(KerasBNSubclass(name="sub")), ValueError,
         r"'sub' \(KerasBNSubclass\) is a subclass of"),
        (lambda: functional(keras.layers.BatchNormalization(name="r", renorm=True)),
         ValueError, "'r' uses renorm=True"),
        (lambda: SubclassedModel(), TypeError, "subclassed model has no graph"),
        (lambda: keras.Sequential([keras.layers.BatchNormalization()]), ValueError,
         "is not built"),
    ],
    ids=["custom_layer", "bn_subclass", "renorm", "subclassed_model", "unbuilt"],
)
def test_what_cannot_be_converted_is_refused_clearly(make, error, match):
    model = make()
    with pytest.raises(error, match=match):
        convert_batch_normalization(model)


def test_nested_custom_layer_is_refused_and_bad_arguments():
    inner = functional(BlockLayer(name="deep"))
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, inner(inputs))
    with pytest.raises(ValueError, match="'deep'"):
        convert_batch_normalization(outer)
    with pytest.raises(ValueError, match="variance_correction"):
        convert_batch_normalization(outer, variance_correction="bessel")
    with pytest.raises(TypeError, match="functional or Sequential"):
        convert_batch_normalization(keras.layers.Dense(3))
