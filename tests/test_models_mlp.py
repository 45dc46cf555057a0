"""The MNIST MLPs of Section 4.1, checked against numpy arithmetic."""

import keras
import numpy as np
import pytest

import bn_zoo
from bn_zoo.layers import BatchNormalization

MLP = bn_zoo.create_model("mlp", seed=1)
BN_MLP = bn_zoo.create_model("bn_mlp", seed=1)
X = np.random.default_rng(0).uniform(0, 1, (64, 28, 28, 1)).astype("float32")


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def numpy_forward(model, x, batch_norm):
    """Pre-activations of the three hidden layers and the softmax output,
    computed with numpy from the model's variables (inference mode)."""
    h = x.reshape(len(x), -1).astype("float64")
    pre = []
    for i in (1, 2, 3):
        dense = model.get_layer(f"hidden{i}_dense")
        z = h @ dense.kernel.numpy()
        if batch_norm:
            bn = model.get_layer(f"hidden{i}_bn")
            z = (z - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
            z = z * bn.gamma.numpy() + bn.beta.numpy()
        else:
            z = z + dense.bias.numpy()
        pre.append(z)
        h = sigmoid(z)
    top = model.get_layer("predictions")
    logits = h @ top.kernel.numpy() + top.bias.numpy()
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return pre, e / e.sum(axis=1, keepdims=True)


def test_layer_names_and_structure():
    hidden = [f"hidden{i}_{kind}" for i in (1, 2, 3) for kind in ("dense", "sigmoid")]
    assert [l.name for l in MLP.layers[1:]] == ["flatten"] + hidden + ["predictions"]
    bn_hidden = [f"hidden{i}_{k}" for i in (1, 2, 3) for k in ("dense", "bn", "sigmoid")]
    assert [l.name for l in BN_MLP.layers[1:]] == ["flatten"] + bn_hidden + ["predictions"]
    for i in (1, 2, 3):
        assert MLP.get_layer(f"hidden{i}_dense").use_bias
        assert not BN_MLP.get_layer(f"hidden{i}_dense").use_bias
        assert isinstance(BN_MLP.get_layer(f"hidden{i}_bn"), BatchNormalization)
    assert MLP.input.shape == (None, 28, 28, 1)


def test_parameter_counts():
    # 784-100-100-100-10; BN replaces each hidden bias by γ, β (+ 4 statistics
    # per unit, the layer's scalar choice of inference statistics and its
    # scalar count of moving-average updates).
    plain = (784 * 100 + 100) + 2 * (100 * 100 + 100) + (100 * 10 + 10)
    assert MLP.count_params() == plain
    trainable = plain - 3 * 100 + 3 * 2 * 100
    assert sum(int(np.prod(w.shape)) for w in BN_MLP.trainable_weights) == trainable
    assert sum(int(np.prod(w.shape)) for w in BN_MLP.non_trainable_weights) == 3 * (4 * 100 + 2)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_forward_pass_and_sigmoid_input_match_numpy(batch_norm):
    model = BN_MLP if batch_norm else MLP
    pre, probabilities = numpy_forward(model, X, batch_norm)
    np.testing.assert_allclose(model(X), probabilities, rtol=1e-4, atol=1e-6)
    # The trainer reads x, the input of the last hidden sigmoid, like this:
    probe = keras.Model(model.input, model.get_layer("hidden3_sigmoid").input)
    np.testing.assert_allclose(probe(X), pre[2], rtol=1e-4, atol=1e-5)


def test_bn_normalizes_the_input_of_every_sigmoid_in_training():
    # In training, the sigmoid's input is the dense output normalized with the
    # mini-batch statistics (γ = 1, β = 0 at initialization, ε = 1e-3).
    layers = [BN_MLP.get_layer(f"hidden{i}_{k}") for i in (1, 2, 3) for k in ("dense", "sigmoid")]
    outputs = [l.output if l.name.endswith("dense") else l.input for l in layers]
    probe = keras.Model(BN_MLP.input, outputs)
    values = [np.asarray(v, "float64") for v in probe(X, training=True)]
    for z, x in zip(values[0::2], values[1::2]):
        expected = (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + 1e-3)
        np.testing.assert_allclose(x, expected, rtol=1e-3, atol=1e-4)


def test_weights_are_small_gaussian_with_the_documented_stddev():
    for model in (MLP, BN_MLP):
        kernel = model.get_layer("hidden1_dense").kernel.numpy().ravel()  # 78,400 draws
        assert abs(kernel.mean()) < 0.003
        assert abs(kernel.std() - 0.1) < 0.002
        # Gaussian, not uniform: ~4.55% of draws beyond 2σ (uniform: none).
        assert 0.04 < np.mean(np.abs(kernel) > 0.2) < 0.051
    np.testing.assert_array_equal(MLP.get_layer("hidden1_dense").bias.numpy(), 0)
    a, b = (m.get_layer("hidden2_dense").kernel.numpy() for m in (MLP, BN_MLP))
    np.testing.assert_array_equal(a, b)  # same seed, same draws
    assert not np.array_equal(a, MLP.get_layer("hidden3_dense").kernel.numpy())


def test_include_top_false_returns_the_last_hidden_layer():
    model = bn_zoo.create_model("bn_mlp", include_top=False)
    assert model.output.shape == (None, 100)
    assert model.layers[-1].name == "hidden3_sigmoid"


def test_any_input_shape_is_flattened():
    model = bn_zoo.create_model("mlp", input_shape=(32, 32, 3), classes=5)
    assert model.get_layer("hidden1_dense").kernel.shape == (3072, 100)
    assert model(np.zeros((2, 32, 32, 3))).shape == (2, 5)
    model = bn_zoo.create_model("mlp", input_shape=(784,))
    assert model.get_layer("hidden1_dense").kernel.shape == (784, 100)


def test_hidden_units_and_batch_norm_kwargs():
    model = bn_zoo.create_model(
        "bn_mlp", hidden_units=(50, 20), batch_norm_kwargs={"momentum": 0.9}
    )
    assert model.get_layer("hidden2_dense").units == 20
    assert model.get_layer("hidden2_bn").momentum == 0.9
    assert "hidden3_dense" not in {l.name for l in model.layers}


def test_keras_file_round_trip(tmp_path):
    model = bn_zoo.create_model("bn_mlp", seed=3)
    for w in model.weights:
        w.assign(np.random.default_rng(0).uniform(0.5, 1.5, w.shape))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded(X), model(X), rtol=1e-6)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(pooling="avg"), ValueError, "pooling"),
        (dict(input_shape=(None, 28)), ValueError, "fully known input shape"),
        (dict(hidden_units=()), ValueError, "hidden_units"),
        (dict(hidden_units=(100, 0)), ValueError, "hidden_units"),
        (dict(init_stddev=0.0), ValueError, "init_stddev"),
        (dict(classes=-1), ValueError, "classes"),
        (dict(weights="mnist_nonexistent"), ValueError, "registered name"),
        (dict(batch_norm_kwargs={"axis": 1}), ValueError, "axis"),
        (dict(depth_multiplier=0.5), TypeError, "depth_multiplier"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        bn_zoo.create_model("bn_mlp", **kwargs)
