"""Raw pixels in, right answers out: `include_preprocessing=True`,
`bn_zoo.preprocess_input(model=..., weights=...)`, and the README's model zoo
snippet run as written."""

import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import bn_zoo
from bn_zoo.data import mnist
from bn_zoo.export import export_model
from bn_zoo.models import hub
from commands import ROOT

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

README = os.path.join(ROOT, "README.md")


@pytest.fixture
def keras_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "CACHE_DIR", str(tmp_path / "cache"))


def test_readme_model_zoo_snippet_gives_the_accuracy_it_states(keras_cache):
    text = open(README, encoding="utf-8").read()
    section = text[text.index("## Model zoo"):]
    snippet = section[section.index("```python\n") + 10: section.index("```\n", 10)]
    namespace = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    stated = float(re.search(r"accuracy = .*# (0\.\d+)", snippet).group(1))
    # Independent: the plain model on numpy-scaled pixels.
    images, labels = mnist.load("test")
    plain = bn_zoo.create_model("bn_mlp", weights="mnist")
    expected = (plain.predict(images / np.float32(255), verbose=0).argmax(-1) == labels).mean()
    assert namespace["accuracy"] == pytest.approx(expected) == pytest.approx(stated, abs=5e-5)
    np.testing.assert_allclose(namespace["scaled"], images / 255.0, rtol=1e-6)


@pytest.mark.parametrize(
    "model, weights, expected",
    [
        ("bn_mlp", "mnist", lambda x: x / 255.0),
        ("bn_inception", None, lambda x: x / 127.5 - 1.0),
        ("bn_inception", "imagenet", lambda x: x / 127.5 - 1.0),
        ("bn_inception", "imagenet_caffe", lambda x: x[..., ::-1] - [104.0, 117.0, 128.0]),
        ("bn_x5", "/some/file.weights.h5", lambda x: x / 127.5 - 1.0),
    ],
)
def test_preprocess_input_knows_each_model_and_weights(model, weights, expected):
    pixels = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3)).astype("uint8")
    ours = bn_zoo.preprocess_input(pixels, model=model, weights=weights)
    np.testing.assert_allclose(ours, expected(pixels.astype(np.float64)), rtol=1e-6, atol=1e-4)


def test_preprocess_input_needs_one_of_mode_and_model():
    with pytest.raises(ValueError, match="either `mode`"):
        bn_zoo.preprocess_input(np.zeros(3))
    with pytest.raises(ValueError, match="either `mode`"):
        bn_zoo.preprocess_input(np.zeros(3), "mnist", model="bn_mlp")
    with pytest.raises(ValueError, match="Unknown model"):
        bn_zoo.preprocess_input(np.zeros(3), model="resnet")


def test_caffe_preprocessing_inside_inception_saves_and_exports(tmp_path):
    """A model with the Caffe scaling inside: the .keras file and the
    SavedModel both take raw pixels and give the model's answers."""
    model = bn_zoo.create_model(
        "bn_inception", variant="caffe", include_preprocessing=True, input_shape=(64, 64, 3),
        depth_multiplier=0.1, classes=5, seed=0,
    )
    assert model.get_layer("preprocessing").mode == "caffe_bn_inception"
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    # Independent: the same layers after the preprocessing layer, fed with numpy-scaled input.
    body = keras.Model(model.get_layer("conv1_pad").input, model.output)
    expected = body.predict(pixels[..., ::-1] - np.float32([104, 117, 128]), verbose=0)
    np.testing.assert_allclose(model.predict(pixels, verbose=0), expected, rtol=1e-5, atol=1e-6)

    path = str(tmp_path / "m.keras")
    model.save(path)
    np.testing.assert_allclose(keras.models.load_model(path).predict(pixels, verbose=0),
                               expected, rtol=1e-5, atol=1e-6)
    served = tf.saved_model.load(export_model(model, str(tmp_path / "export")))
    probabilities = served.signatures["serving_default"](images=tf.constant(pixels))["probabilities"]
    np.testing.assert_allclose(probabilities.numpy(), expected, rtol=1e-4, atol=1e-6)
    # Served for models that scale their own input too (its answers on JPEG
    # bytes: tests/test_export_class_names.py).
    assert "image_bytes" in served.signatures


def test_include_preprocessing_must_be_a_bool():
    with pytest.raises(TypeError, match="include_preprocessing"):
        bn_zoo.create_model("bn_mlp", include_preprocessing="yes")
