"""The shipped MNIST weights: `create_model(name, weights="mnist")`
loads the sha256-verified file from the package and reaches, on the real
10,000-image MNIST test set, the accuracies the Figure 1 run measured."""

import os

import numpy as np
import pytest

import bn_zoo
from bn_zoo.data import mnist
from bn_zoo.models import hub

# Measured by `python -m trainers.figure1` (final.json of each run).
MEASURED = {
    ("mlp", "moving"): 0.9755,
    ("bn_mlp", "moving"): 0.9814,
    ("bn_mlp", "population"): 0.9815,
}


@pytest.fixture
def keras_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "CACHE_DIR", str(tmp_path / "cache"))


def test_data_module_reads_the_real_test_set():
    images, labels = mnist.load("test", os.environ.get("TFDS_DATA_DIR"))
    assert images.shape == (10_000, 28, 28, 1) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize(
    "name, statistics", sorted(MEASURED) + [("bn_mlp", None)], ids=str
)
def test_shipped_weights_reach_the_measured_accuracy(keras_cache, name, statistics):
    """`statistics=None`: the default, which for bn_mlp is the population
    statistics the weights were registered with."""
    kwargs = {}
    if statistics is not None and name == "bn_mlp":
        kwargs["batch_norm_kwargs"] = {"inference_statistics": statistics}
    model = bn_zoo.create_model(name, weights="mnist", **kwargs)
    expected = {None: "population"}.get(statistics, statistics)
    for layer in bn_zoo.population.batch_normalization_layers(model):
        assert layer.inference_statistics == expected
    statistics = expected
    images, labels = mnist.load("test", os.environ.get("TFDS_DATA_DIR"))
    x = bn_zoo.models.preprocess_input(images, bn_zoo.model_info(name).preprocessing)
    probabilities = model.predict(x, batch_size=2500, verbose=0)
    accuracy = np.mean(np.argmax(probabilities, -1) == labels)
    assert accuracy == pytest.approx(MEASURED[(name, statistics)], abs=1e-4)
    if name == "bn_mlp":
        assert accuracy >= 0.98  # The target for the BN network.
