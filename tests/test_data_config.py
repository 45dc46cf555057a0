"""Per-weights data configs: what the releases' own code says, who reads them
(`preprocess_input`, `create_model(include_preprocessing=True)`, the
evaluator's crops), how they print, and the refusals."""

import ast
import dataclasses
import json
import math
import os
from decimal import Decimal

import keras
import numpy as np
import pytest
import tensorflow as tf

import bn_zoo
from bn_zoo import evaluation
from bn_zoo.data import tfrecords
from bn_zoo.evaluation import crops as crops_lib
from bn_zoo.evaluation import evaluator
from bn_zoo.models import DataConfig, catalogue, hub, labels, weights_files

_SITE = os.path.dirname(os.path.dirname(keras.__file__))


def _reference_source(relative):
    path = os.path.join(_SITE, relative)
    if not os.path.isfile(path):
        pytest.skip(f"{relative} is not installed")
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read())


def _defaults(tree, class_name, function="__init__"):
    """{argument: default} of class_name.function in a parsed module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == function:
                    args = item.args.args[len(item.args.args) - len(item.args.defaults):]
                    return {a.arg: ast.literal_eval(d) for a, d in zip(args, item.args.defaults)}
    raise AssertionError(f"{class_name}.{function} not found")


# ------------------------------------------------- the releases' own settings
def test_caffe_release_data_config_is_pretrained_models_settings():
    from release_references import _bninception_module

    pytest.importorskip("torch")
    settings = _bninception_module().pretrained_settings["bninception"]["imagenet"]
    config = bn_zoo.models.data_config("bn_inception", "imagenet_caffe")
    assert config.input_shape == (*settings["input_size"][1:], settings["input_size"][0])
    pixels = np.random.default_rng(0).integers(0, 256, (2, 3, 3, 3)).astype(np.float64)
    # pretrained-models: RGB -> input_space, 0-255 range, minus mean, over std.
    assert settings["input_space"] == "BGR" and settings["input_range"] == [0, 255]
    expected = (pixels[..., ::-1] - settings["mean"]) / settings["std"]
    np.testing.assert_allclose(
        bn_zoo.preprocess_input(pixels, model="bn_inception", weights="imagenet_caffe"),
        expected, atol=1e-9)
    assert config.label_set == "imagenet1000"
    assert len(labels.class_names(config.label_set)) == settings["num_classes"]
    # Its evaluation transform: TransformImage(scale=0.875, preserve_aspect_ratio=True)
    # resizes the shorter side to floor(224 / 0.875), then crops the centre.
    transform = _defaults(_reference_source("pretrainedmodels/utils.py"), "TransformImage")
    assert transform["preserve_aspect_ratio"] is True
    assert (config.crop_mode, config.crop_fraction) == ("shorter_side", transform["scale"])
    side = settings["input_size"][1]
    assert config.resize_side() == math.floor(side / transform["scale"])


def test_slim_release_data_config_is_tf_slims():
    tree = _reference_source("tf_slim/nets/inception_v2.py")
    size = next(ast.literal_eval(node.value) for node in ast.walk(tree)
                if isinstance(node, ast.Assign) and ast.unparse(node.targets[0])
                == "inception_v2.default_image_size")
    config = bn_zoo.models.data_config("bn_inception", "imagenet")
    assert config.input_shape == (size, size, 3)
    pixels = np.random.default_rng(1).integers(0, 256, (2, 3, 3, 3))
    # slim's inception preprocessing: [0, 1] floats, then (x - 0.5) * 2.
    np.testing.assert_allclose(
        bn_zoo.preprocess_input(pixels, model="bn_inception", weights="imagenet"),
        (pixels / 255.0 - 0.5) * 2.0, atol=1e-6)
    entry = catalogue.weights_of("bn_inception")["imagenet"]
    assert labels.get(config.label_set).background
    assert set(labels.get(config.label_set).output_widths) == set(entry.accepted_classes)


@pytest.mark.parametrize("model_name", bn_zoo.list_models())
def test_every_data_config_fits_its_model_and_weights(model_name):
    info = bn_zoo.model_info(model_name)
    own = bn_zoo.models.data_config(model_name)
    assert own == info.data_config and own.input_shape == info.default_input_shape
    assert own.preprocessing == info.preprocessing
    assert info.num_classes in labels.get(own.label_set).output_widths
    for weights_name, entry in info.weights.items():
        config = bn_zoo.models.data_config(model_name, weights_name)
        assert config == entry.data_config and config.preprocessing == entry.preprocessing
        assert catalogue.preprocessing_of(model_name, weights_name) == config.preprocessing
        assert set(entry.accepted_classes) <= set(labels.get(config.label_set).output_widths)
        assert config.input_shape == info.default_input_shape


def test_files_and_none_give_the_models_config_and_typos_are_refused(tmp_path):
    own = bn_zoo.models.data_config("bn_inception")
    for weights in (None, str(tmp_path / "mine.weights.h5"), tmp_path / "run.keras",
                    str(tmp_path)):
        assert bn_zoo.models.data_config("bn_inception", weights) == own
    with pytest.raises(ValueError, match=r"Unknown weights 'imagnet'.*'imagenet', "
                       r"'imagenet_caffe'.*Received: weights='imagnet'"):
        bn_zoo.models.data_config("bn_inception", "imagnet")
    with pytest.raises(ValueError, match="Unknown weights 'imagnet'"):
        bn_zoo.preprocess_input(np.zeros((1, 2, 2, 3)), model="bn_inception",
                                weights="imagnet")


# ------------------------------------------------------ printing, round trip
def test_model_info_prints_every_data_config():
    text = str(bn_zoo.model_info("bn_inception"))
    lines = text.splitlines()
    assert lines[0].startswith("bn_inception (inception, paper 4.2.1")
    slim, caffe = (bn_zoo.models.data_config("bn_inception", w)
                   for w in ("imagenet", "imagenet_caffe"))
    assert f"  data: {bn_zoo.models.data_config('bn_inception')}" in lines
    assert f"  weights 'imagenet' (1000/1001 classes): {slim}" in lines
    assert f"  weights 'imagenet_caffe' (1000 classes): {caffe}" in lines
    assert str(caffe) == ("224x224x3, shorter side to S/0.875 = 256, central crop, "
                          "bilinear, preprocessing 'caffe_bn_inception', labels imagenet1000")
    assert str(slim) == ("224x224x3, central 87.5% crop, bilinear, preprocessing "
                         "'inception', labels imagenet1001_background")
    assert "whole image" in str(bn_zoo.model_info("bn_mlp")) and "mnist10" in str(
        bn_zoo.model_info("mlp"))
    assert "data_config=DataConfig(" in repr(bn_zoo.model_info("mlp"))


def test_to_dict_survives_json():
    for model_name, weights in (("bn_inception", "imagenet_caffe"), ("bn_mlp", "mnist")):
        config = bn_zoo.models.data_config(model_name, weights)
        again = DataConfig.from_dict(json.loads(json.dumps(config.to_dict())))
        assert again == config and isinstance(again.input_shape, tuple)


@pytest.mark.parametrize("size", [1, 7, 28, 96, 224, 299, 331])
@pytest.mark.parametrize("fraction", [0.875, 0.9, 0.95, 0.5, 1.0, 0.33])
def test_resize_side_is_round_half_up_of_the_decimal(size, fraction):
    expected = math.floor(Decimal(size) / Decimal(repr(fraction)) + Decimal("0.5"))
    config = DataConfig(input_shape=(size, size, 3), preprocessing="inception",
                        crop_fraction=fraction)
    assert config.resize_side() == expected == crops_lib.ten_crop_side(size, fraction)


# ----------------------------------------------------------------- refusals
@pytest.mark.parametrize("field, value", [
    ("input_shape", (224, 0, 3)), ("input_shape", "224"), ("preprocessing", "torch"),
    ("crop_fraction", 0.0), ("crop_fraction", 1.5), ("crop_fraction", True),
    ("crop_mode", "center"), ("interpolation", "linear"), ("label_set", "imagenet"),
])
def test_bad_fields_are_refused(field, value):
    fields = {"input_shape": (224, 224, 3), "preprocessing": "inception", field: value}
    with pytest.raises(ValueError, match="Received|Unknown preprocessing"):
        DataConfig(**fields)


def test_registered_weights_refuse_a_contradicting_mode_and_models_bad_fields():
    config = bn_zoo.models.data_config("bn_inception", "imagenet_caffe")
    with pytest.raises(ValueError, match="contradicts the data config's 'caffe_bn_inception'"):
        catalogue.RegisteredWeights("x.weights.h5", "file:///x", None, 1000,
                                    preprocessing="inception", data_config=config)
    with pytest.raises(ValueError, match=r"register_model's own arguments"):
        bn_zoo.register_model(name="bad_data_config",
                              data_config={"preprocessing": "mnist"})(_mlp_builder)
    with pytest.raises(ValueError, match=r"Unknown DataConfig fields \['crop'\]"):
        bn_zoo.register_model(name="bad_data_config", data_config={"crop": 0.9})(_mlp_builder)
    assert "bad_data_config" not in bn_zoo.list_models()


def _mlp_builder(classes=10, classifier_activation="softmax"):
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(classes, activation=classifier_activation)(x))


# ------------------------------------------- readers: scaling from the config
@pytest.fixture
def caffe_resnet_weights(tmp_path, monkeypatch):
    """bn_mlp weights on 4x4 RGB inputs, registered with a data config whose
    scaling (caffe_resnet) is not the model's own (mnist)."""
    monkeypatch.setattr(hub, "CACHE_DIR", str(tmp_path / "cache"))
    kwargs = {"input_shape": (4, 4, 3)}
    model = bn_zoo.create_model("bn_mlp", seed=3, **kwargs)
    path = str(tmp_path / "rgb.weights.h5")
    model.save_weights(path)
    config = DataConfig(input_shape=(4, 4, 3), preprocessing="caffe_resnet",
                        crop_fraction=0.9, interpolation="bicubic")
    entry = catalogue.RegisteredWeights(
        file_name="rgb.weights.h5", origin=f"file://{path}",
        sha256=weights_files.sha256_of(path), classes=10, model_kwargs=kwargs,
        data_config=config)
    catalogue.register_weights("bn_mlp", "rgb_test", entry)
    yield config
    catalogue._remove_weights("bn_mlp", "rgb_test")


def test_preprocess_input_and_in_model_scaling_read_the_data_config(caffe_resnet_weights):
    assert bn_zoo.models.data_config("bn_mlp", "rgb_test") == caffe_resnet_weights
    assert catalogue.weights_of("bn_mlp")["rgb_test"].preprocessing == "caffe_resnet"
    pixels = np.random.default_rng(5).integers(0, 256, (3, 4, 4, 3)).astype(np.uint8)
    expected = pixels[..., ::-1].astype(np.float64) - [103.939, 116.779, 123.68]
    scaled = bn_zoo.preprocess_input(pixels, model="bn_mlp", weights="rgb_test")
    assert isinstance(scaled, np.ndarray)
    np.testing.assert_allclose(scaled, expected, rtol=1e-6, atol=1e-4)
    # Without the weights: the model's own mode (mnist, x / 255).
    np.testing.assert_allclose(bn_zoo.preprocess_input(pixels, model="bn_mlp"),
                               pixels / 255.0, atol=1e-7)
    plain = bn_zoo.create_model("bn_mlp", weights="rgb_test")
    inside = bn_zoo.create_model("bn_mlp", weights="rgb_test", include_preprocessing=True)
    assert inside.get_layer("preprocessing").mode == "caffe_resnet"
    np.testing.assert_allclose(inside.predict(pixels.astype("float32"), verbose=0),
                               plain.predict(expected.astype("float32"), verbose=0),
                               rtol=1e-5, atol=1e-6)
    # No label set: decoding needs the names.
    with pytest.raises(ValueError, match="no label set.*class_names"):
        bn_zoo.decode_predictions(np.ones((1, 10)), model="bn_mlp", weights="rgb_test")
    names = [f"c{i}" for i in range(10)]
    (row,) = bn_zoo.decode_predictions(np.eye(10)[[4]], top=1, class_names=names)
    assert row == [("c4", "c4", 1.0)]


# --------------------------------------------- readers: the evaluator's crops
S = 8


def _resize(x, height, width, method):
    """Half-pixel centres, no antialiasing, float64: bilinear or nearest."""
    def axis(n_in, n_out):
        centres = (np.arange(n_out) + 0.5) * n_in / n_out
        if method == "nearest":
            return np.minimum(np.floor(centres), n_in - 1).astype(int), None, None
        centres = np.clip(centres - 0.5, 0, n_in - 1)
        low = np.floor(centres).astype(int)
        return low, np.minimum(low + 1, n_in - 1), centres - low

    low, high, frac = axis(x.shape[0], height)
    x = x[low] if frac is None else (
        x[low] * (1 - frac)[:, None, None] + x[high] * frac[:, None, None])
    low, high, frac = axis(x.shape[1], width)
    return x[:, low] if frac is None else (
        x[:, low] * (1 - frac)[None, :, None] + x[:, high] * frac[None, :, None])


def _reference_crop(image, fraction, mode, method):
    """Protocol 1 by DataConfig's definitions, in float64."""
    x = image.astype(np.float64)
    h, w = x.shape[:2]
    if mode == "central_fraction":
        top, left = int((h - h * fraction) / 2), int((w - w * fraction) / 2)
        return _resize(x[top:h - top, left:w - left], S, S, method)
    side = math.floor(Decimal(S) / Decimal(repr(fraction)) + Decimal("0.5"))
    if h <= w:
        x = _resize(x, side, math.floor(Decimal(w * side) / Decimal(h) + Decimal("0.5")), method)
    else:
        x = _resize(x, math.floor(Decimal(h * side) / Decimal(w) + Decimal("0.5")), side, method)
    h, w = x.shape[:2]
    top, left = (h - S) // 2, (w - S) // 2
    return x[top:top + S, left:left + S]


SHAPES = [(23, 37), (41, 19), (13, 13), (9, 30)]
CROPS = [(0.875, "central_fraction", "bilinear"), (0.75, "shorter_side", "bilinear"),
         (0.6, "central_fraction", "nearest"), (0.875, "shorter_side", "nearest")]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    jpegs = [tf.io.encode_jpeg(rng.integers(0, 256, (*shape, 3), dtype=np.uint8),
                               quality=95).numpy() for shape in SHAPES]
    return jpegs, [tf.io.decode_jpeg(j, channels=3).numpy() for j in jpegs]


@pytest.mark.parametrize("fraction, mode, method", CROPS)
def test_protocol_1_crop_follows_the_config(images, fraction, mode, method):
    for image in images[1]:
        crop = crops_lib.crop_image(image, 1, S, crop_fraction=fraction, crop_mode=mode,
                                    interpolation=method).numpy()
        np.testing.assert_allclose(crop[0], _reference_crop(image, fraction, mode, method),
                                   rtol=0, atol=1e-3)


def test_crop_settings_come_from_the_members_configs():
    model = keras.Sequential([keras.Input((S, S, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    caffe = bn_zoo.models.data_config("bn_inception", "imagenet_caffe")
    slim = bn_zoo.models.data_config("bn_inception", "imagenet")
    odd = dataclasses.replace(caffe, crop_fraction=0.8, interpolation="area")

    def members(*configs):
        return [evaluation.Member(f"m{i}", model, "inception", data_config=c)
                for i, c in enumerate(configs)]

    paper = {"crop_fraction": 0.875, "crop_mode": "central_fraction",
             "interpolation": "bilinear"}
    assert evaluator.crop_settings(members(None)) == paper
    assert evaluator.crop_settings(members(odd, None)) == {
        "crop_fraction": 0.8, "crop_mode": "shorter_side", "interpolation": "area"}
    # Members that disagree on a field get the paper's for that field.
    assert evaluator.crop_settings(members(slim, caffe)) == paper
    assert evaluator.crop_settings(members(odd, caffe)) == {
        "crop_fraction": 0.875, "crop_mode": "shorter_side", "interpolation": "bilinear"}
    assert evaluator.crop_settings(members(odd), crop_fraction=0.5, interpolation="nearest") \
        == {"crop_fraction": 0.5, "crop_mode": "shorter_side", "interpolation": "nearest"}
    with pytest.raises(ValueError, match="crop_mode"):
        evaluator.crop_settings(members(None), crop_mode="center")
    with pytest.raises(TypeError, match="DataConfig"):
        evaluation.Member("m", model, "inception", data_config={"crop_fraction": 0.5})


def test_evaluate_crops_as_the_members_data_config_says(images, tmp_path):
    jpegs, decoded = images
    rng = np.random.default_rng(8)
    kernel = rng.normal(0, 0.01, (S * S * 3, 4))
    inputs = keras.Input((S, S, 3))
    dense = keras.layers.Dense(4, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([kernel.astype("float32"), np.zeros(4, "float32")])
    labels_ = [0, 1, 2, 3]
    tfrecords.write_records(
        str(tmp_path / tfrecords.shard_name("validation", 0, 1)),
        [tfrecords.make_example(j, y + 1).SerializeToString() for j, y in zip(jpegs, labels_)])
    data = dict(source="tfrecord", data_dir=str(tmp_path), num_classes=4, cycle_length=1)
    config = DataConfig(input_shape=(S, S, 3), preprocessing="caffe_resnet",
                        crop_fraction=0.75, crop_mode="shorter_side", interpolation="nearest")
    member = evaluation.Member("m", model, "caffe_resnet", data_config=config)
    results = evaluation.evaluate([member], data, protocol=1, progress=False,
                                  keep_probabilities=True)
    assert results.crops == "1 crop (shorter side S/0.75, central SxS, nearest)"
    assert results.to_dict()["crops"] == results.crops
    for image, probabilities in zip(decoded, results.probabilities[0]):
        x = _reference_crop(image, 0.75, "shorter_side", "nearest")
        logits = (x[..., ::-1] - [103.939, 116.779, 123.68]).reshape(-1) @ kernel
        expected = np.exp(logits - logits.max())
        np.testing.assert_allclose(probabilities, expected / expected.sum(), rtol=1e-4,
                                   atol=1e-6)
