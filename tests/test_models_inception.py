"""Inception variants of Section 4.2 against Figure 5's arithmetic.

Expected shapes and parameter counts are computed here from the paper's
table (with the errata for 3c, 4c/4d and 4e resolved by the branch columns),
never read back from the models.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import bn_zoo
from bn_zoo.layers import BatchNormalization
from bn_zoo.models import LocalResponseNormalization
from bn_zoo.models.table import multiply_adds

# Figure 5: #1×1, #3×3 reduce, #3×3, double #3×3 reduce, double #3×3,
# pool, pool projection (0 = pass through), stride.
FIGURE_5 = {
    "3a": (64, 64, 64, 64, 96, "avg", 32, 1),
    "3b": (64, 64, 96, 64, 96, "avg", 64, 1),
    "3c": (0, 128, 160, 64, 96, "max", 0, 2),
    "4a": (224, 64, 96, 96, 128, "avg", 128, 1),
    "4b": (192, 96, 128, 96, 128, "avg", 128, 1),
    "4c": (160, 128, 160, 128, 160, "avg", 128, 1),
    "4d": (96, 128, 192, 160, 192, "avg", 128, 1),
    "4e": (0, 128, 192, 192, 256, "max", 0, 2),
    "5a": (352, 192, 320, 160, 224, "avg", 128, 1),
    "5b": (352, 192, 320, 192, 224, "max", 128, 1),
}
# Output of every row of Figure 5 at 224×224 (3c 14×14, 4c/4d 608, 4e 7×7×1056).
ROWS_224 = [
    ("conv1_{act}", (112, 112, 64)),
    ("pool1_pool", (56, 56, 64)),
    ("conv2_{act}", (56, 56, 192)),
    ("pool2_pool", (28, 28, 192)),
    ("inception_3a_concat", (28, 28, 256)),
    ("inception_3b_concat", (28, 28, 320)),
    ("inception_3c_concat", (14, 14, 576)),
    ("inception_4a_concat", (14, 14, 576)),
    ("inception_4b_concat", (14, 14, 576)),
    ("inception_4c_concat", (14, 14, 608)),
    ("inception_4d_concat", (14, 14, 608)),
    ("inception_4e_concat", (7, 7, 1056)),
    ("inception_5a_concat", (7, 7, 1024)),
    ("inception_5b_concat", (7, 7, 1024)),
    ("avg_pool", (1024,)),
    ("predictions", (1000,)),
]
VARIANTS = ["inception", "bn_baseline", "bn_inception", "bn_x5", "bn_x30", "bn_x5_sigmoid"]
BN_VARIANTS = VARIANTS[1:]
ACTIVATION = {name: "relu" for name in VARIANTS} | {"bn_x5_sigmoid": "sigmoid"}
SMALL = dict(input_shape=(32, 32, 3), depth_multiplier=0.25)

MODELS = {name: bn_zoo.create_model(name) for name in VARIANTS}


def expected_counts(batch_norm, stem, depth_multiplier=1.0, classes=1000):
    """(trainable, non-trainable) parameters from Figure 5's columns."""
    depth = lambda f: max(int(f * depth_multiplier), 16)  # noqa: E731
    counts = [0, 0]

    def conv(weights, out):
        counts[0] += weights + (0 if batch_norm else out)
        if batch_norm:
            counts[0] += 2 * out  # γ, β
            counts[1] += 4 * out  # moving and population mean, variance
            counts[1] += 1  # use_population_statistics, the inference choice
            counts[1] += 1  # moving_statistics_updates, the update count
        return out

    c64 = depth(64)
    if stem == "separable":
        multiplier = min(c64 // 3, 8)
        c = conv(7 * 7 * 3 * multiplier + 3 * multiplier * c64, c64)
    else:
        c = conv(7 * 7 * 3 * c64, c64)
    c = conv(c * depth(64), depth(64))
    c = conv(9 * c * depth(192), depth(192))
    for one, r3, c3, rd, d3, _, proj, _ in FIGURE_5.values():
        out = 0
        if one:
            out += conv(c * depth(one), depth(one))
        conv(c * depth(r3), depth(r3))
        out += conv(9 * depth(r3) * depth(c3), depth(c3))
        conv(c * depth(rd), depth(rd))
        conv(9 * depth(rd) * depth(d3), depth(d3))
        out += conv(9 * depth(d3) * depth(d3), depth(d3))
        out += conv(c * depth(proj), depth(proj)) if proj else c
        c = out
    counts[0] += c * classes + classes
    return tuple(counts)


def trainable_and_not(model):
    count = lambda vs: sum(int(np.prod(v.shape)) for v in vs)  # noqa: E731
    return count(model.trainable_weights), count(model.non_trainable_weights)


def producers(model):
    """{layer name: names of the layers feeding it, in argument order}, read
    from the model's serialized config."""

    def history(obj, out):
        if isinstance(obj, dict):
            if "keras_history" in obj:
                out.append(obj["keras_history"][0])
            for value in obj.values():
                history(value, out)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                history(value, out)
        return out

    return {
        layer["name"]: history(layer["inbound_nodes"], [])
        for layer in model.get_config()["layers"]
    }


def consumers(model):
    result = {}
    for name, inputs in producers(model).items():
        for source in inputs:
            result.setdefault(source, []).append(name)
    return result


def layer_configs(model):
    """{layer name: serialized layer} without the input layer, whose
    automatic name differs from model to model."""
    input_name = model.layers[0].name
    text = json.dumps(model.get_config()["layers"]).replace(f'"{input_name}"', '"input"')
    layers = json.loads(text)
    return {l["name"]: l for l in layers if l["class_name"] != "InputLayer"}


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("name", VARIANTS)
def test_output_shape_after_every_row_of_figure_5(name):
    model = MODELS[name]
    for layer_name, shape in ROWS_224:
        layer = model.get_layer(layer_name.format(act=ACTIVATION[name]))
        assert tuple(layer.output.shape[1:]) == shape, layer_name


def test_branches_are_concatenated_in_table_order():
    model = MODELS["bn_inception"]
    feeds = producers(model)
    for module, (one, *_, proj, _) in FIGURE_5.items():
        p = f"inception_{module}"
        expected = ([f"{p}_1x1_relu"] if one else []) + [
            f"{p}_3x3_relu",
            f"{p}_double_3x3_2_relu",
            f"{p}_pool_proj_relu" if proj else f"{p}_pool",
        ]
        assert feeds[f"{p}_concat"] == expected

    # And numerically: the concatenation's channel slices are the branches.
    branches = ["1x1_relu", "3x3_relu", "double_3x3_2_relu", "pool_proj_relu"]
    names = [f"inception_3a_{b}" for b in branches] + ["inception_3c_3x3_relu",
             "inception_3c_double_3x3_2_relu", "inception_3c_pool"]
    outputs = [model.get_layer(n).output for n in names]
    outputs += [model.get_layer(f"inception_{m}_concat").output for m in ("3a", "3c")]
    probe = keras.Model(model.input, outputs)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype("float32")
    *parts, concat_3a, concat_3c = [np.asarray(t) for t in probe(x)]
    np.testing.assert_array_equal(concat_3a, np.concatenate(parts[:4], axis=-1))
    np.testing.assert_array_equal(concat_3c, np.concatenate(parts[4:], axis=-1))
    assert [p.shape[-1] for p in parts] == [64, 64, 96, 32, 160, 96, 320]


# -------------------------------------------------------------- parameters
@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count_follows_the_table_separable_stem(name):
    assert trainable_and_not(MODELS[name]) == expected_counts(name != "inception", "separable")


@pytest.mark.parametrize("name", ["inception", "bn_baseline", "bn_inception"])
def test_parameter_count_follows_the_table_conv_stem(name):
    # Parameter counts do not depend on the input size.
    model = bn_zoo.create_model(name, stem="conv", input_shape=(32, 32, 3))
    assert trainable_and_not(model) == expected_counts(name != "inception", "conv")
    assert isinstance(model.get_layer("conv1_conv"), keras.layers.Conv2D)
    assert model.get_layer("conv1_conv").kernel.shape == (7, 7, 3, 64)


def expected_multiply_adds(stem):
    """Multiply-adds of the convolutions and the classifier at 224×224."""
    if stem == "separable":
        total = 112 * 112 * (7 * 7 * 3 * 8 + 3 * 8 * 64)
    else:
        total = 112 * 112 * 7 * 7 * 3 * 64
    total += 56 * 56 * 64 * 64 + 56 * 56 * 9 * 64 * 192
    size, c = 28, 192
    for one, r3, c3, rd, d3, _, proj, stride in FIGURE_5.values():
        out = size // stride
        total += size * size * c * (one + r3 + rd + proj)
        total += out * out * 9 * r3 * c3 + size * size * 9 * rd * d3 + out * out * 9 * d3 * d3
        c, size = one + c3 + d3 + (proj or c), out
    return total + 1024 * 1000


@pytest.mark.parametrize("stem", ["separable", "conv"])
def test_multiply_adds_follow_the_table(stem):
    model = MODELS["bn_inception"]
    if stem == "conv":
        model = bn_zoo.create_model("inception", stem="conv")
    assert multiply_adds(model) == expected_multiply_adds(stem)
    assert multiply_adds(bn_zoo.create_model("mlp")) == 784 * 100 + 100 * 100 * 2 + 100 * 10


def test_separable_stem_has_depth_multiplier_8():
    conv1 = MODELS["bn_inception"].get_layer("conv1_conv")
    assert isinstance(conv1, keras.layers.SeparableConv2D)
    assert conv1.depth_multiplier == 8 and conv1.strides == (2, 2)
    assert conv1.kernel_size == (7, 7)


@pytest.mark.parametrize("depth_multiplier", [0.5, 0.25])
def test_depth_multiplier_scales_filters_with_minimum_16(depth_multiplier):
    model = bn_zoo.create_model(
        "bn_baseline", input_shape=(32, 32, 3), depth_multiplier=depth_multiplier, classes=7
    )
    assert trainable_and_not(model) == expected_counts(True, "separable", depth_multiplier, 7)
    # 3a's pool projection has 32 filters: 16 at 0.5, and 16 (not 8) at 0.25.
    assert model.get_layer("inception_3a_pool_proj_conv").filters == 16


# ------------------------------------------------------- variant differences
def test_bn_inception_puts_bn_between_every_conv_and_its_nonlinearity():
    model = MODELS["bn_inception"]
    feeds, fed = producers(model), consumers(model)
    convs = [
        l
        for l in model.layers
        if isinstance(l, (keras.layers.Conv2D, keras.layers.SeparableConv2D))
    ]
    # conv1, conv2_reduce, conv2; five in every module; 1×1 and projection in eight.
    assert len(convs) == 3 + 5 * 10 + 8 + 8
    for conv in convs:
        assert not conv.use_bias, conv.name
        (bn,) = fed[conv.name]
        assert isinstance(model.get_layer(bn), BatchNormalization)
        (act,) = fed[bn]
        assert model.get_layer(act).get_config()["activation"] == "relu"
        assert feeds[bn] == [conv.name]
    assert len([l for l in model.layers if isinstance(l, BatchNormalization)]) == len(convs)
    absent = (LocalResponseNormalization, keras.layers.Dropout)
    assert not [l for l in model.layers if isinstance(l, absent)]


@pytest.mark.parametrize("name", ["bn_x5", "bn_x30"])
def test_bn_x5_and_bn_x30_are_the_bn_inception_network(name):
    assert layer_configs(MODELS[name]) == layer_configs(MODELS["bn_inception"])


def test_bn_x5_sigmoid_differs_only_in_the_nonlinearity():
    relu = json.dumps(layer_configs(MODELS["bn_x5"]), sort_keys=True)
    sigmoid = json.dumps(layer_configs(MODELS["bn_x5_sigmoid"]), sort_keys=True)
    assert "relu" in relu and "relu" not in sigmoid
    assert sigmoid == relu.replace("relu", "sigmoid")


def test_bn_baseline_is_bn_inception_plus_lrn_and_dropout():
    baseline = layer_configs(MODELS["bn_baseline"])
    bn_inception = layer_configs(MODELS["bn_inception"])
    extra = set(baseline) - set(bn_inception)
    assert extra == {"pool1_lrn", "conv2_lrn", "top_dropout"}
    assert set(bn_inception) <= set(baseline)
    assert baseline["top_dropout"]["config"]["rate"] == 0.4
    feeds = producers(MODELS["bn_baseline"])
    # LRN where GoogLeNet has it: after pool1, and after conv2 before pool2.
    assert feeds["pool1_lrn"] == ["pool1_pool"] and feeds["conv2_reduce_conv"] == ["pool1_lrn"]
    assert feeds["conv2_lrn"] == ["conv2_relu"] and feeds["pool2_pool"] == ["conv2_lrn"]
    assert feeds["top_dropout"] == ["avg_pool"] and feeds["predictions"] == ["top_dropout"]
    for name in set(bn_inception) - {"conv2_reduce_conv", "pool2_pool", "predictions"}:
        assert baseline[name] == bn_inception[name], name


def test_inception_baseline_is_bn_baseline_without_bn_and_with_biases():
    model = MODELS["inception"]
    baseline = layer_configs(MODELS["bn_baseline"])
    plain = layer_configs(model)
    assert set(plain) == {n for n in baseline if not n.endswith("_bn")}
    assert not [l for l in model.layers if isinstance(l, BatchNormalization)]
    fed = consumers(model)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            assert layer.use_bias, layer.name
            (act,) = fed[layer.name]
            assert act == layer.name.replace("_conv", "_relu")
            bn_conv = dict(baseline[layer.name]["config"], use_bias=True)
            assert plain[layer.name]["config"] == bn_conv


def test_dropout_and_lrn_can_be_overridden():
    model = bn_zoo.create_model("bn_inception", dropout_rate=0.2, lrn=True, **SMALL)
    assert model.get_layer("top_dropout").rate == 0.2
    assert isinstance(model.get_layer("pool1_lrn"), LocalResponseNormalization)
    model = bn_zoo.create_model("inception", dropout_rate=0.0, lrn=False, **SMALL)
    names = {l.name for l in model.layers}
    assert not names & {"top_dropout", "pool1_lrn", "conv2_lrn"}


def test_batch_norm_kwargs_reach_every_bn_layer():
    model = bn_zoo.create_model(
        "bn_x30",
        batch_norm_kwargs={"momentum": 0.9, "variance_correction": "biased", "epsilon": 1e-5},
        **SMALL,
    )
    bns = [l for l in model.layers if isinstance(l, BatchNormalization)]
    assert len(bns) == 69
    for bn in bns:
        assert (bn.momentum, bn.variance_correction, bn.epsilon) == (0.9, "biased", 1e-5)


# -------------------------------------------------------------------- LRN
def test_lrn_matches_caffe_formula():
    # Caffe: b_c = a_c / (1 + alpha/n * sum over 5 channels of a²)^beta.
    a = np.random.default_rng(1).normal(0, 30, (2, 3, 3, 10)).astype("float32")
    padded = np.pad(a**2, [(0, 0)] * 3 + [(2, 2)])
    window = sum(padded[..., i : i + 10] for i in range(5))
    expected = a / (1 + 1e-4 / 5 * window) ** 0.75
    np.testing.assert_allclose(LocalResponseNormalization()(a), expected, rtol=1e-5)


# ------------------------------------------------------------ input sizes
def test_minimum_input_size_and_any_larger_size():
    for size in (32, 45, 97):
        model = bn_zoo.create_model(
            "bn_x5", input_shape=(size, size, 3), depth_multiplier=0.25, classes=5
        )
        y = model(np.zeros((2, size, size, 3), "float32"))
        assert y.shape == (2, 5)
    with pytest.raises(ValueError, match="at least 32x32"):
        bn_zoo.create_model("bn_x5", input_shape=(31, 64, 3))


@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_include_top_false_with_each_pooling(pooling):
    full = bn_zoo.create_model(
        "bn_x5", include_top=False, input_shape=(64, 64, 3), depth_multiplier=0.25
    )
    model = bn_zoo.create_model(
        "bn_x5", include_top=False, pooling=pooling, input_tensor=full.input, depth_multiplier=0.25
    )
    model.set_weights(full.get_weights())
    x = np.random.default_rng(2).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    features = np.asarray(full(x))
    assert features.shape == (2, 2, 2, 1024 // 4)
    expected = {None: features, "avg": features.mean(axis=(1, 2)), "max": features.max(axis=(1, 2))}
    np.testing.assert_allclose(model(x), expected[pooling], rtol=1e-5, atol=1e-6)
    assert "predictions" not in {l.name for l in model.layers}


def test_include_top_false_accepts_unknown_spatial_size():
    model = bn_zoo.create_model(
        "bn_inception",
        include_top=False,
        pooling="avg",
        input_shape=(None, None, 3),
        depth_multiplier=0.25,
    )
    assert model(np.zeros((1, 40, 72, 3), "float32")).shape == (1, 256)


# ------------------------------------------------------------- save/load
def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))


def test_keras_file_round_trip_in_a_fresh_process(tmp_path):
    model = bn_zoo.create_model("bn_baseline", **SMALL, classes=10)
    _randomize(model)
    path = tmp_path / "bn_baseline.keras"
    model.save(path)
    x = np.random.default_rng(3).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        import bn_zoo  # registers BatchNormalization and LocalResponseNormalization
        model = keras.saving.load_model({str(path)!r})
        np.save({str(tmp_path / "y.npy")!r}, model(np.load({str(tmp_path / "x.npy")!r})))
        wanted = [l for l in model.layers if "lrn" in l.name or "_bn" in l.name]
        print(",".join(sorted(type(l).__name__ for l in wanted)))
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    classes = set(out.stdout.strip().splitlines()[-1].split(","))
    assert classes == {"BatchNormalization", "LocalResponseNormalization"}
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(x), rtol=1e-5)


@pytest.mark.parametrize("name", ["inception", "bn_inception"])
def test_weights_round_trip(tmp_path, name):
    model = bn_zoo.create_model(name, **SMALL)
    _randomize(model, seed=4)
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    loaded = bn_zoo.create_model(name, weights=str(path), **SMALL)
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(model.weights, loaded.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ---------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(weights="imagenet"), ValueError, "registered name"),
        (dict(weights="/nonexistent/w.weights.h5"), FileNotFoundError, "does not exist"),
        (dict(pooling="sum", include_top=False), ValueError, "pooling"),
        (dict(classes=0), ValueError, "classes"),
        (dict(stem="dense"), ValueError, "stem"),
        (dict(depth_multiplier=0), ValueError, "depth_multiplier"),
        (dict(input_shape=(224, 224)), ValueError, "height, width, channels"),
        (dict(input_shape=(None, None, 3)), ValueError, "static"),
        (dict(input_shape=(224, 16, 3)), ValueError, "at least 32x32"),
        (dict(batch_norm_kwargs={"name": "x"}), ValueError, "name"),
        (dict(batch_norm_kwargs=0.9), TypeError, "dict"),
        (dict(dropout_rate=1.0), ValueError, "dropout_rate"),
        (dict(lrn="yes"), TypeError, "lrn"),
        (dict(include_top="no"), TypeError, "include_top"),
        (dict(classifier_activation="nonsense"), ValueError, "classifier_activation"),
        (dict(width=2), TypeError, "width"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        bn_zoo.create_model("bn_baseline", **kwargs)
