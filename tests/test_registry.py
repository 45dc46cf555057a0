"""The model catalogue, its recipes and results (numbers from the paper),
preprocessing, registered weights checked with real files, safe loading of
weights files, and the old import paths."""

import dataclasses
import hashlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import bn_zoo
from bn_zoo.models import catalogue, hub, preprocess_input, weights_files

NAMES = [
    "bn_baseline", "bn_inception", "bn_mlp", "bn_x30", "bn_x5", "bn_x5_sigmoid",
    "inception", "mlp",
]
IMAGENET = ["inception", "bn_baseline", "bn_inception", "bn_x5", "bn_x30", "bn_x5_sigmoid"]


def test_list_models():
    assert bn_zoo.list_models() == NAMES


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown model 'resnet'.*bn_x30.*mlp"):
        bn_zoo.create_model("resnet")
    with pytest.raises(ValueError, match="Known models"):
        bn_zoo.model_info("bn-x30")


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_model_builds_under_its_name(name):
    small = {} if "mlp" in name else dict(input_shape=(32, 32, 3), depth_multiplier=0.25)
    model = bn_zoo.create_model(name, **small)
    info = bn_zoo.model_info(name)
    assert model.name == name
    assert model.output.shape == (None, info.num_classes)
    assert info.family == ("mlp" if "mlp" in name else "inception")
    assert info.preprocessing == ("mnist" if "mlp" in name else "inception")
    assert info.default_input_shape == ((28, 28, 1) if "mlp" in name else (224, 224, 3))


def test_learning_rates_of_section_4_2_2():
    lr = {n: bn_zoo.model_info(n).recipe["base_learning_rate"] for n in IMAGENET}
    assert lr["inception"] == lr["bn_baseline"] == 0.0015
    assert lr["bn_x5"] == lr["bn_x5_sigmoid"] == pytest.approx(5 * 0.0015)
    assert lr["bn_x30"] == pytest.approx(30 * 0.0015)


def test_section_4_2_1_changes_for_the_bn_x_variants():
    base = bn_zoo.model_info("inception").recipe
    assert base["optimizer"] == "sgd_momentum" and base["batch_size_per_replica"] == 32
    assert base["dropout_rate"] == 0.4 and base["lrn"] is True
    assert bn_zoo.model_info("bn_baseline").recipe == base  # nothing else changed
    for name in ["bn_x5", "bn_x30", "bn_x5_sigmoid", "bn_inception"]:
        r = bn_zoo.model_info(name).recipe
        assert r["weight_decay"] == pytest.approx(base["weight_decay"] / 5)
        assert r["lr_decay_steps"] == pytest.approx(base["lr_decay_steps"] / 6, abs=1)
        assert r["lr_decay_rate"] == base["lr_decay_rate"]
        assert r["dropout_rate"] == 0 and r["lrn"] is False
        assert r["distortion_strength"] < base["distortion_strength"]
        assert r["shuffle_thoroughly"] and not base["shuffle_thoroughly"]
        assert r["batch_size_per_replica"] == 32 and r["momentum"] == base["momentum"]


def test_unstated_values_are_marked():
    for name in IMAGENET:
        info = bn_zoo.model_info(name)
        assert {"momentum", "weight_decay", "lr_decay_steps", "lr_decay_rate"} <= info.unstated
        stated = {"base_learning_rate", "batch_size_per_replica", "dropout_rate", "lrn"}
        assert not stated & info.unstated
        assert all(isinstance(note, str) and note for note in info.recipe_notes.values())
    for name in ("mlp", "bn_mlp"):
        info = bn_zoo.model_info(name)
        assert info.recipe["batch_size_per_replica"] == 60 and info.recipe["train_steps"] == 50_000
        assert {"optimizer", "base_learning_rate"} <= info.unstated
        assert "batch_size_per_replica" not in info.unstated
        assert "paper does not state" in info.recipe_notes["base_learning_rate"]
    # One MNIST recipe for both MLPs.
    assert bn_zoo.model_info("mlp").recipe == bn_zoo.model_info("bn_mlp").recipe


def test_figure_3_results():
    results = {n: bn_zoo.model_info(n).paper_results for n in IMAGENET}
    steps = {n: r["steps_to_72_2"] for n, r in results.items()}
    accuracy = {n: r["max_accuracy"] for n, r in results.items()}
    assert steps == {
        "inception": 31.0e6, "bn_baseline": 13.3e6, "bn_x5": 2.1e6, "bn_x30": 2.7e6,
        "bn_x5_sigmoid": None, "bn_inception": None,
    }
    assert accuracy.pop("bn_inception") is None
    assert accuracy == pytest.approx(
        {"inception": 0.722, "bn_baseline": 0.727, "bn_x5": 0.730, "bn_x30": 0.748,
         "bn_x5_sigmoid": 0.698}
    )
    # Figure 4: BN-Inception's single crop error, BN-x30's accuracy.
    figure_4 = results["bn_inception"]
    assert figure_4["single_crop_top1_error"] == pytest.approx(1 - accuracy["bn_x30"])


def test_model_info_is_a_frozen_copy():
    info = bn_zoo.model_info("bn_x5")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "other"
    info.recipe["base_learning_rate"] = 1.0
    info.paper_results["max_accuracy"] = 1.0
    fresh = bn_zoo.model_info("bn_x5")
    assert fresh.recipe["base_learning_rate"] == 0.0075
    assert fresh.paper_results["max_accuracy"] == 0.730


# ------------------------------------------------------------ preprocessing
def test_preprocess_input():
    pixels = np.array([[0, 51, 127.5, 255]], "float32")
    np.testing.assert_allclose(preprocess_input(pixels, "mnist"), [[0, 0.2, 0.5, 1]], rtol=1e-6)
    np.testing.assert_allclose(preprocess_input(pixels, "inception"), [[-1, -0.6, 0, 1]], atol=1e-6)
    as_uint8 = preprocess_input(np.array([0, 255], "uint8"), "mnist")
    assert as_uint8.dtype == "float32"
    np.testing.assert_allclose(as_uint8, [0, 1])


def test_preprocess_input_inside_a_graph():
    images = np.arange(0, 256, dtype="uint8").reshape(16, 16)
    data = tf.data.Dataset.from_tensors(images).map(lambda x: preprocess_input(x, "inception"))
    (out,) = list(data.as_numpy_iterator())
    np.testing.assert_allclose(out, images / 127.5 - 1, atol=1e-6)
    traced = tf.function(lambda x: preprocess_input(x, "mnist"))
    np.testing.assert_allclose(traced(tf.constant(images)), images / 255, atol=1e-7)


def test_preprocess_input_rejects_unknown_mode():
    with pytest.raises(ValueError, match="'mnist', 'inception'"):
        preprocess_input(np.zeros(3), "caffe")


# ------------------------------------------------------- registered weights
@pytest.fixture
def registered(tmp_path, monkeypatch):
    """A trained-looking MLP saved to a real file and registered as 'test'
    with its sha256, fetched into a temporary Keras cache."""
    model = bn_zoo.create_model("bn_mlp")
    for w in model.weights:
        w.assign(np.random.default_rng(5).uniform(0.5, 1.5, w.shape))
    source = tmp_path / "source" / "bn_mlp_test.weights.h5"
    source.parent.mkdir()
    model.save_weights(source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    entry = catalogue.RegisteredWeights("bn_mlp_test.weights.h5", source.as_uri(), digest, 10)
    monkeypatch.setattr(catalogue, "_MODELS", dict(catalogue._MODELS))  # undone after the test
    catalogue.register_weights("bn_mlp", "test", entry)
    monkeypatch.setattr(hub, "CACHE_DIR", str(tmp_path / "cache"))
    return model, source, tmp_path / "cache"


def assert_same_weights(a, b):
    for x, y in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_registered_weights_are_fetched_and_loaded(registered):
    model, _, cache = registered
    assert "test" in bn_zoo.model_info("bn_mlp").weights
    loaded = bn_zoo.create_model("bn_mlp", weights="test")
    assert_same_weights(model, loaded)
    assert list(cache.rglob("bn_mlp_test.weights.h5"))  # in the Keras cache
    headless = bn_zoo.create_model("bn_mlp", weights="test", include_top=False)
    for name in ("hidden1_dense", "hidden3_bn"):
        assert_same_weights(model.get_layer(name), headless.get_layer(name))


def test_registered_weights_with_a_wrong_hash_are_refused(registered):
    _, source, _ = registered
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    source.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="failed the sha256 check"):
        bn_zoo.create_model("bn_mlp", weights="test")


def test_registered_weights_require_their_classes(registered):
    with pytest.raises(ValueError, match="`classes` must be 10"):
        bn_zoo.create_model("bn_mlp", weights="test", classes=5)
    with pytest.raises(ValueError, match="classifier_activation"):
        bn_zoo.create_model("bn_mlp", weights="test", classifier_activation="relu")
    bn_zoo.create_model("bn_mlp", weights="test", include_top=False)  # any classes


def test_shipped_weights_point_into_the_package():
    entry = catalogue.shipped("x.weights.h5", sha256="0" * 64, classes=10)
    assert entry.origin.startswith("file://")
    assert entry.origin.endswith("/bn_zoo/weights/x.weights.h5")


def test_weights_that_do_not_fit_are_refused_naming_the_variables(tmp_path):
    small = bn_zoo.create_model("bn_mlp", hidden_units=(100, 100, 50))
    path = tmp_path / "small.weights.h5"
    small.save_weights(path)
    message = (
        r"(?s)do not fit.*shape mismatch at layers/dense_2/vars/0 "
        r"\(layer 'hidden3_dense'\): model \(100, 100\), file \(100, 50\)"
    )
    with pytest.raises(ValueError, match=message):
        bn_zoo.create_model("bn_mlp", weights=str(path))
    plain = bn_zoo.create_model("mlp")
    plain_path = tmp_path / "plain.weights.h5"
    plain.save_weights(plain_path)
    message = r"missing from the file: layers/batch_normalization/vars/0 \(layer 'hidden1_bn'\)"
    with pytest.raises(ValueError, match=message):
        bn_zoo.create_model("bn_mlp", weights=str(plain_path))


def test_refused_or_failed_loads_leave_the_model_untouched(tmp_path):
    model = bn_zoo.create_model("bn_mlp")
    before = [w.numpy() for w in model.weights]
    other = bn_zoo.create_model("mlp")
    path = tmp_path / "other.weights.h5"
    other.save_weights(path)
    with pytest.raises(ValueError, match="do not fit"):
        bn_zoo.models.load_weights(model, path)
    for w, value in zip(model.weights, before):
        np.testing.assert_array_equal(w.numpy(), value)

    # A failure half-way through loading (after the first layers took the
    # file's values) is rolled back too.
    good = tmp_path / "good.weights.h5"
    source = bn_zoo.create_model("bn_mlp", seed=9)
    source.save_weights(good)
    last = model.get_layer("hidden3_bn")

    def failing_load(store):
        raise OSError("disk went away")

    last.load_own_variables = failing_load
    with pytest.raises(OSError, match="disk went away"):
        bn_zoo.models.load_weights(model, good)
    assert not np.array_equal(model.get_layer("hidden1_dense").kernel.numpy(),
                              source.get_layer("hidden1_dense").kernel.numpy())
    for w, value in zip(model.weights, before):
        np.testing.assert_array_equal(w.numpy(), value)


def test_truncated_and_misnamed_files_are_refused(tmp_path):
    path = tmp_path / "w.weights.h5"
    bn_zoo.create_model("mlp").save_weights(path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        bn_zoo.create_model("mlp", weights=str(path))
    other = tmp_path / "w.h5"
    other.write_bytes(b"")
    with pytest.raises(ValueError, match=r"'\*\.weights\.h5'"):
        bn_zoo.create_model("mlp", weights=str(other))


def test_subpackages_are_reachable_from_a_plain_import():
    # bn_zoo's own code uses no deprecated path of its own (any such warning
    # is an error here), while the old paths still work.
    code = ("import warnings; warnings.filterwarnings('error', r'bn_zoo\\.', DeprecationWarning); "
            "import bn_zoo; bn_zoo.create_model('bn_mlp', weights=None); "
            "print(bn_zoo.export.export_model.__name__, 'export' in dir(bn_zoo)); "
            "warnings.resetwarnings(); print(bn_zoo.convert.from_slim.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.stdout.split() == ["export_model", "True", "from_slim"], done.stderr[-2000:]
    with pytest.raises(AttributeError, match="no attribute 'exporter'"):
        bn_zoo.exporter


# ------------------------------------------- input scaling keeps its type
@pytest.mark.parametrize("mode", ["mnist", "inception", "caffe_bn_inception",
                                  "imagenet_mean_std", "caffe_resnet"])
@pytest.mark.parametrize("dtype", ["uint8", "float32", "float64"])
def test_preprocess_input_returns_numpy_for_numpy_and_tensors_for_tensors(mode, dtype):
    pixels = np.random.default_rng(1).integers(0, 256, (2, 4, 4, 3)).astype(dtype)
    x = pixels.astype(np.float64)
    expected = {"mnist": x / 255, "inception": x / 127.5 - 1,
                "caffe_bn_inception": x[..., ::-1] - [104.0, 117.0, 128.0],
                "imagenet_mean_std": (x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225],
                "caffe_resnet": x[..., ::-1] - [103.939, 116.779, 123.68]}[mode]
    out = bn_zoo.preprocess_input(pixels, mode)
    assert isinstance(out, np.ndarray)
    assert out.dtype == ("float32" if dtype == "uint8" else dtype)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-4)
    tensor = bn_zoo.preprocess_input(tf.constant(pixels), mode)
    assert tf.is_tensor(tensor) and not isinstance(tensor, np.ndarray)
    np.testing.assert_allclose(tensor.numpy(), expected, rtol=1e-6, atol=1e-4)
    by_model = bn_zoo.preprocess_input(pixels, model="bn_mlp", weights="mnist")
    assert isinstance(by_model, np.ndarray)


# ---------------------------------------- weights files, layout and loading
def _sequential():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, use_bias=False),
                             bn_zoo.layers.BatchNormalization(), keras.layers.Dense(3)])


def _nested():
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4),
                              bn_zoo.layers.BatchNormalization()], name="inner")
    inputs = keras.Input((6,))
    return keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)))


LAYOUT_MODELS = {
    "bn_mlp": lambda: bn_zoo.create_model("bn_mlp"),
    "inception": lambda: bn_zoo.create_model("inception", **SMALL_INCEPTION),
    "bn_inception_caffe": lambda: bn_zoo.create_model(
        "bn_inception", variant="caffe", include_top=False, **SMALL_INCEPTION),
    "keras_applications": lambda: keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=5),
    "sequential": _sequential,
}
SMALL_INCEPTION = dict(input_shape=(64, 64, 3), depth_multiplier=0.25)


@pytest.mark.parametrize("name", sorted(LAYOUT_MODELS))
def test_the_layout_read_without_writing_is_the_one_keras_writes(name):
    model = LAYOUT_MODELS[name]()
    planned, _ = weights_files._plan(model)
    assert planned == weights_files.written_layout(model)  # Keras' own file


def test_nested_models_are_checked_and_loaded_through_keras(tmp_path):
    model = _nested()
    assert weights_files._plan(model) is None  # the inner model's weights are its own
    source = _nested()
    for w in source.weights:
        w.assign(np.random.default_rng(2).uniform(0.5, 1.5, w.shape))
    path = tmp_path / "nested.weights.h5"
    source.save_weights(path)
    weights_files.load_weights(model, path)
    for a, b in zip(source.weights, model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = tmp_path / "other.weights.h5"
    _sequential().save_weights(other)
    before = [w.numpy() for w in model.weights]
    with pytest.raises(ValueError, match="do not fit"):
        weights_files.load_weights(model, other)
    for w, value in zip(model.weights, before):
        np.testing.assert_array_equal(w.numpy(), value)


@pytest.mark.parametrize("policy", ["bfloat16"], indirect=True)
def test_bfloat16_files_load_as_keras_loads_them(tmp_path, policy):
    source = bn_zoo.create_model("bn_mlp", seed=1)
    for w in source.weights:
        w.assign(np.random.default_rng(3).uniform(0.5, 1.5, w.shape).astype("float32"))
    path = tmp_path / "bf16.weights.h5"
    source.save_weights(path)
    ours = bn_zoo.create_model("bn_mlp", weights=str(path))
    reference = bn_zoo.create_model("bn_mlp")
    reference.load_weights(path)  # Keras' own loader
    for a, b in zip(reference.weights, ours.weights, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a.numpy(), np.float32),
                                      np.asarray(b.numpy(), np.float32))


# ------------------------------------------------------------ old import paths
OLD_NAMES = [
    ("bn_zoo.models.weights", "load_weights", "bn_zoo.models.weights_files", "load_weights"),
    ("bn_zoo.models.weights", "RegisteredWeights", "bn_zoo.models.catalogue", "RegisteredWeights"),
    ("bn_zoo.models.weights", "preprocessing_of", "bn_zoo.models.catalogue", "preprocessing_of"),
    ("bn_zoo.models.registry", "create_model", "bn_zoo.models.hub", "create_model"),
    ("bn_zoo.models.registry", "PAPER_ORDER", "bn_zoo.models.zoo", "PAPER_ORDER"),
    ("bn_zoo.models.registry", "BN_X_RECIPE", "bn_zoo.models.recipes", "BN_X_RECIPE"),
    ("bn_zoo.models.custom", "register_model", "bn_zoo.models.catalogue", "register_model"),
    ("bn_zoo.models.inception", "BNInception", "bn_zoo.models.factories", "BNInception"),
    ("bn_zoo.models.mlp", "BNMLP", "bn_zoo.models.factories", "BNMLP"),
    ("bn_zoo.convert", "from_slim", "bn_zoo.models.releases", "from_slim"),
    ("bn_zoo.convert", "ConversionError", "bn_zoo.models.releases", "ConversionError"),
    ("bn_zoo.convert.releases", "fetch_converted", "bn_zoo.models.hub", "fetch_converted"),
    ("bn_zoo.layers.convert", "convert_batch_normalization", "bn_zoo.layers.swap",
     "convert_batch_normalization"),
]


@pytest.mark.parametrize("old_module, old_name, new_module, new_name", OLD_NAMES)
def test_old_import_paths_hand_on_the_new_names_with_a_warning(
        old_module, old_name, new_module, new_name):
    import importlib

    old = importlib.import_module(old_module)
    with pytest.warns(DeprecationWarning, match=f"{old_module}.{old_name} is deprecated"):
        value = getattr(old, old_name)
    assert value is getattr(importlib.import_module(new_module), new_name)


def test_old_weights_table_and_cache_setting_act_on_the_catalogue(monkeypatch, tmp_path):
    from bn_zoo.models import weights as old

    monkeypatch.setattr(catalogue, "_MODELS", dict(catalogue._MODELS))
    entry = catalogue.shipped("x.weights.h5", sha256="0" * 64, classes=10)
    with pytest.warns(DeprecationWarning):
        table = old.WEIGHTS
    assert table[("mlp", "mnist")] is catalogue.weights_of("mlp")["mnist"]
    table[("bn_mlp", "x")] = entry
    assert catalogue.weights_of("bn_mlp")["x"] is entry
    del table[("bn_mlp", "x")]
    assert "x" not in bn_zoo.model_info("bn_mlp").weights
    monkeypatch.setattr(hub, "CACHE_DIR", None)
    with pytest.warns(DeprecationWarning):
        old.CACHE_DIR = str(tmp_path)
    assert hub.CACHE_DIR == str(tmp_path) and hub.cache_dir() == str(tmp_path)


def test_files_written_before_the_last_two_bn_variables_load(tmp_path):
    """Files whose BN groups lack `use_population_statistics` and
    `moving_statistics_updates` (written before they existed) load: every
    other value is the file's, the layers keep their configured choice and
    count their statistics as caught up."""
    import h5py

    from bn_zoo.layers import moving

    source = bn_zoo.create_model("bn_mlp", seed=6)
    for w in source.weights:
        w.assign(np.random.default_rng(4).uniform(0.5, 1.5, w.shape))
    path = tmp_path / "old.weights.h5"
    source.save_weights(path)
    with h5py.File(path, "r+") as f:
        groups = [g["vars"] for name, g in f["layers"].items()
                  if name.startswith("batch_normalization")]
        assert len(groups) == 3
        for group in groups:
            assert [group[str(i)].shape for i in (6, 7)] == [(), ()]
            del group["6"], group["7"]
    model = bn_zoo.create_model("bn_mlp", weights=str(path),
                                batch_norm_kwargs={"inference_statistics": "population"})
    for layer in bn_zoo.population.batch_normalization_layers(model):
        assert layer.inference_statistics == "population"
        assert float(layer.moving_statistics_updates.numpy()) == moving.UNKNOWN_UPDATES
        kept = source.get_layer(layer.name)
        for name in ("gamma", "beta", "moving_mean", "moving_variance",
                     "population_mean", "population_variance"):
            np.testing.assert_array_equal(getattr(layer, name).numpy(),
                                          getattr(kept, name).numpy())
    np.testing.assert_array_equal(model.get_layer("predictions").kernel.numpy(),
                                  source.get_layer("predictions").kernel.numpy())
