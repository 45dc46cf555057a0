"""The Caffe BN-Inception's PyTorch state dict -> bn_inception(variant="caffe"),
verified against the pretrained-models package's own `bninception` module
(tests/release_references.py): a random state dict saved as the release is,
converted, and the stem, every inception block and the logits compared on the
same random images."""

import dataclasses
import os
import sys

import keras
import numpy as np
import pytest

import bn_zoo
from bn_zoo.models import catalogue, hub, inception_variants, preprocess_input, releases
from release_references import assert_close, caffe_release

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

# The reference's classifier pools with a fixed 7×7 window, so it only runs
# at the release's 224×224.
SIZE = 224


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(state dict path, RGB 0-255 images, reference outputs)."""
    pixels = np.random.default_rng(11).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    bgr = np.asarray(preprocess_input(pixels, "caffe_bn_inception"))
    # An independent check of the preprocessing the weights are registered with.
    np.testing.assert_allclose(bgr, pixels[..., ::-1] - [104.0, 117.0, 128.0], atol=1e-4)
    path, reference = caffe_release(str(tmp_path_factory.mktemp("caffe")), bgr, seed=4)
    return path, bgr, reference


def _run(model, images):
    # One eager call: `predict` would trace a function for a single batch.
    return keras.tree.map_structure(np.asarray, model(images, training=False))


def test_convert_command_writes_weights_whose_stem_blocks_and_logits_match_the_pytorch_module(
        release, tmp_path):
    """The command's function (tests/test_convert_slim.py runs the command
    line) converts the file; the output, loaded as `variant="caffe"`, gives
    the module's stem, every inception block and the logits."""
    from trainers.convert import convert as convert_cli

    path, images, reference = release
    output = tmp_path / "caffe.weights.h5"
    assert convert_cli("caffe_torch", path, str(output))["variant"] == "caffe"
    model = bn_zoo.create_model("bn_inception", variant="caffe", weights=str(output),
                                classifier_activation=None)
    points = inception_variants.end_points("caffe")
    outputs = {n: model.get_layer(layer).output for n, layer in points.items()}
    outputs["logits"] = model.output
    ours = _run(keras.Model(model.input, outputs), images)
    assert set(ours) == set(reference)
    for name, value in reference.items():
        assert_close(ours[name], value, name)


@pytest.fixture
def registered(release, tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(catalogue, "_MODELS", dict(catalogue._MODELS))  # undone after the test
    name = os.path.basename(release[0])
    entry = dataclasses.replace(catalogue.weights_of("bn_inception")["imagenet_caffe"],
                                file_name=name, origin=f"file://{release[0]}")
    catalogue.register_weights("bn_inception", "imagenet_caffe", entry)
    return entry, tmp_path / "cache"


def test_registered_weights_fetch_verify_convert_and_cache(registered, release, monkeypatch):
    """Exporting the registered weights fetches, verifies, converts and caches
    them, builds the model with them, and scales its inputs as they expect."""
    from bn_zoo.export import exporter

    _, images, reference = release
    _, cache = registered
    seen = {}
    monkeypatch.setattr(exporter, "export_model",
                        lambda model, d, **kw: seen.update(kw, model=model))
    exporter.export_registered_model("bn_inception", str(cache / "export"), weights="imagenet_caffe")
    assert seen["preprocessing"] == "caffe_bn_inception"
    expected = keras.ops.softmax(reference["logits"]).numpy()
    assert_close(_run(seen["model"], images), expected, "probabilities")
    assert (cache / "models/bn_zoo/bn_inception_imagenet_caffe_1000.weights.h5").is_file()
    assert catalogue.preprocessing_of("bn_inception", "imagenet_caffe") == "caffe_bn_inception"


def test_a_file_that_fails_its_hash_prefix_is_refused_and_deleted(registered, tmp_path, monkeypatch, release):
    entry, cache = registered
    data = open(release[0], "rb").read()
    bad = tmp_path / entry.file_name
    bad.write_bytes(data[: len(data) - 1000])  # truncated download, same name
    catalogue.register_weights("bn_inception", "imagenet_caffe",
                               dataclasses.replace(entry, origin=f"file://{bad}"))
    # What create_model(weights="imagenet_caffe") calls after building the
    # network (test_registered_weights_fetch_verify_convert_and_cache goes
    # through create_model); the refusal is this function's.
    with pytest.raises(releases.ConversionError, match="truncated or corrupted"):
        hub.fetch_converted("bn_inception", "imagenet_caffe", 1000)
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_a_truncated_file_without_hash_prefix_is_refused(release, tmp_path):
    data = open(release[0], "rb").read()
    bad = tmp_path / "bn_inception.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(releases.ConversionError, match="torch.load"):
        releases.from_caffe_torch(str(bad))


def test_another_state_dict_is_refused(tmp_path):
    import torch

    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 4)}, path)
    with pytest.raises(releases.ConversionError, match="not the Caffe BN-Inception"):
        releases.from_caffe_torch(str(path), input_shape=(64, 64, 3), include_top=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(stem="separable"), "stem='conv'"),
        (dict(variant="slim"), "variant='caffe'"),
        (dict(classes=1001), "classes` must be 1000"),
        (dict(batch_norm_kwargs={"epsilon": 1e-3}), "epsilon=1e-05"),
    ],
)
def test_arguments_that_conflict_with_the_weights_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bn_zoo.create_model("bn_inception", weights="imagenet_caffe", **kwargs)


def test_sides_the_caffe_network_cannot_take_are_refused():
    with pytest.raises(ValueError, match="multiple of 32"):
        bn_zoo.create_model("bn_inception", variant="caffe", include_top=False,
                            input_shape=(200, 200, 3))


def test_missing_torch_gets_an_install_hint(release, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"bn_zoo\[torch\]"):
        releases.from_caffe_torch(release[0])
