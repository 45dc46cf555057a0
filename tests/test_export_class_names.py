"""Class names in every export, a backbone that scales its own input, and .keras files.

One module-scoped fixture trains a small classifier on four real photos
(scikit-image's bundled `chelsea`, `coffee`, `astronaut`, `rocket`, written
here as JPEG files) whose `PreprocessInput` layer sits two models deep (a
backbone built with its own scaling, inside a trunk, inside the classifier),
then exports it with the photos' class names: as a SavedModel (with a data
config that crops the shorter side and resizes bicubically), as ONNX, as
LiteRT, and, saved as a `.keras` file, through the `trainers.export` command.
A fresh process in which importing bn_zoo fails serves the JPEG bytes and
reads the names back from each format. References: the Keras model's own
predictions on pixels decoded, cropped and resized here with TensorFlow's
ops, the photos' true classes, and the names read with onnx, onnxruntime and
the TFLite flatbuffer schema.
"""

import fractions
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import commands
from bn_zoo import export
from bn_zoo.layers import BatchNormalization
from bn_zoo.models.catalogue import DataConfig
from bn_zoo.models.input_scaling import PreprocessInput

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

SIZE = 32
# The photos, in output order, and their class names (a space, non-ASCII).
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
NAMES = ("tabby cat", "café crème", "astronaut", "space rocket")
TOP_K = 2
ATOL = 1e-5
# How the SavedModel's image_bytes cuts a photo: timm's shorter-side crop.
DATA_CONFIG = DataConfig(input_shape=(SIZE, SIZE, 3), preprocessing="imagenet_mean_std",
                         crop_fraction=0.8, crop_mode="shorter_side", interpolation="bicubic")

# Runs in a fresh interpreter: importing bn_zoo fails.
CLIENT = r"""
import importlib.abc, json, sys
import numpy as np

class NoBnZoo(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "bn_zoo":
            raise ImportError("serving must not need bn_zoo")

sys.meta_path.insert(0, NoBnZoo())
import onnx, onnxruntime
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

request_file, out_json, out_npz = sys.argv[1:]
with open(request_file) as f:
    request = json.load(f)
jpegs = tf.constant([open(p, "rb").read() for p in request["jpegs"]])
pixels = np.load(request["pixels"])
report, arrays = {}, {}

def keep(prefix, outputs):
    for key, value in outputs.items():
        value = np.asarray(value)
        if value.dtype == object:
            value = np.char.decode(value.astype(np.bytes_), "utf-8")
        arrays[f"{prefix}/{key}"] = value

for name, path in request["saved_models"].items():
    loaded = tf.saved_model.load(path)
    keep(f"{name}/bytes", {k: v.numpy() for k, v in
                           loaded.signatures["image_bytes"](image_bytes=jpegs).items()})
    keep(f"{name}/uint8", {k: v.numpy() for k, v in loaded.signatures["serving_uint8"](
        images=tf.constant(pixels.round().astype(np.uint8))).items()})
    keep(f"{name}/float", {k: v.numpy() for k, v in loaded.signatures["serving_default"](
        images=tf.constant(pixels)).items()})
    report[f"{name}/signatures"] = sorted(loaded.signatures)

onnx_path = request["onnx"]
session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
keep("onnx", dict(zip([o.name for o in session.get_outputs()],
                      session.run(None, {"images": pixels}))))
report["onnx/metadata_props"] = {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
report["onnx/custom_metadata_map"] = dict(session.get_modelmeta().custom_metadata_map)

litert_path = request["litert"]
keep("litert", Interpreter(model_path=litert_path).get_signature_runner(
    "serving_default")(images=pixels))
with open(litert_path, "rb") as f:
    model = schema.Model.GetRootAs(bytearray(f.read()), 0)
entries = {}
for i in range(model.MetadataLength()):
    entry = model.Metadata(i)
    entries[entry.Name().decode()] = bytes(model.Buffers(entry.Buffer()).DataAsNumpy())
report["litert/metadata"] = {k: v.decode("utf-8") for k, v in entries.items()
                             if k == "class_names"}
report["bn_zoo_imported"] = any(m.split(".")[0] == "bn_zoo" for m in sys.modules)
with open(out_json, "w") as f:
    json.dump(report, f)
np.savez(out_npz, **arrays)
"""


def _photos():
    from skimage import data

    return [getattr(data, name)() for name in PHOTOS]


def _nested_classifier(seed=0):
    """classifier -> trunk -> backbone -> PreprocessInput: the scaling two
    models deep, as in a backbone built with include_preprocessing=True."""
    keras.utils.set_random_seed(seed)
    raw = keras.Input((SIZE, SIZE, 3), name="pixels")
    x = PreprocessInput("imagenet_mean_std", name="scaling")(raw)
    for filters in (12, 16):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = BatchNormalization(momentum=0.8)(x)  # Caught up after a few steps.
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    backbone = keras.Model(raw, x, name="backbone")
    trunk_input = keras.Input((SIZE, SIZE, 3))
    trunk = keras.Model(trunk_input, backbone(trunk_input), name="trunk")
    inputs = keras.Input((SIZE, SIZE, 3))
    outputs = keras.layers.Dense(len(NAMES), activation="softmax", name="head")(trunk(inputs))
    return keras.Model(inputs, outputs, name="photo_classifier")


def _train(model, photos, steps=60, seed=0):
    """A few SGD steps on random crops (40-100% of each side) and flips of
    the photos, resized to SIZE², as raw pixels: enough to tell them apart."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(steps):
        images, labels = [], []
        for label, photo in enumerate(photos):
            for _ in range(4):
                h, w = photo.shape[:2]
                fraction = rng.uniform(0.4, 1.0)
                ch, cw = int(h * fraction), int(w * fraction)
                top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
                crop = photo[top:top + ch, left:left + cw]
                if rng.random() < 0.5:
                    crop = crop[:, ::-1]
                images.append(tf.image.resize(crop, [SIZE, SIZE]).numpy())
                labels.append(label)
        batches.append((np.stack(images), np.asarray(labels)))
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    for images, labels in batches:
        model.train_on_batch(images, labels)
    return model


def _round_half_up(value):
    return int(value + fractions.Fraction(1, 2))


def _shorter_side_crop(image, config):
    """timm's evaluation crop, written out: the shorter side resized to
    round(S / crop_fraction), the central S×S window, clipped to [0, 255]."""
    side = _round_half_up(fractions.Fraction(SIZE) / fractions.Fraction(str(config.crop_fraction)))
    h, w = image.shape[:2]
    if h <= w:
        size = (side, _round_half_up(fractions.Fraction(w * side, h)))
    else:
        size = (_round_half_up(fractions.Fraction(h * side, w)), side)
    resized = tf.image.resize(image.astype("float32"), size, method=config.interpolation).numpy()
    top, left = (size[0] - SIZE) // 2, (size[1] - SIZE) // 2
    return np.clip(resized[top:top + SIZE, left:left + SIZE], 0.0, 255.0)


def _central_crop(image, fraction=0.875):
    """The Inception evaluation crop with TensorFlow's own ops."""
    cropped = tf.image.central_crop(tf.constant(image), fraction)
    return tf.image.resize(cropped[None], [SIZE, SIZE])[0].numpy()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("class_names")
    photos = _photos()
    model = _train(_nested_classifier(), photos)

    jpegs = []
    for name, photo in zip(PHOTOS, photos):
        jpegs.append(str(root / f"{name}.jpg"))
        tf.io.write_file(jpegs[-1], tf.io.encode_jpeg(photo, quality=92))
    # The decoded JPEGs (what the signatures decode), cut as each export cuts them.
    decoded = [tf.io.decode_jpeg(tf.io.read_file(p), channels=3).numpy() for p in jpegs]
    shorter_side = np.stack([_shorter_side_crop(image, DATA_CONFIG) for image in decoded])
    central = np.stack([_central_crop(image) for image in decoded])
    pixels = shorter_side.round().astype("float32")  # Integers: uint8 and float agree.
    np.save(root / "pixels.npy", pixels)

    saved_model = export.export_model(model, str(root / "saved_model"), class_names=NAMES,
                                      top_k=TOP_K, data_config=DATA_CONFIG)
    onnx_dir = export.export_model(model, str(root / "onnx"), class_names=NAMES,
                                   top_k=TOP_K, format="onnx")
    litert_dir = export.export_model(model, str(root / "litert"), class_names=NAMES,
                                     top_k=TOP_K, format="litert")
    # The same model as a .keras file, through the command.
    model_file = root / "photos.keras"
    model.save(model_file)
    labels = root / "labels.txt"
    labels.write_text("".join(f"{n}\n" for n in NAMES), encoding="utf-8")
    result = commands.run("trainers.export", [
        f"--model_file={model_file}", f"--class_names_file={labels}",
        f"--export_dir={root / 'from_file'}", f"--top_k={TOP_K}"], timeout=300, tf_log_level="2")
    assert result.returncode == 0, result.stderr[-3000:]
    from_file = result.stdout.strip().splitlines()[-1]

    request = {
        "jpegs": jpegs, "pixels": str(root / "pixels.npy"),
        "saved_models": {"saved_model": saved_model, "from_file": from_file},
        "onnx": os.path.join(onnx_dir, "model.onnx"),
        "litert": os.path.join(litert_dir, "model.tflite"),
    }
    (root / "request.json").write_text(json.dumps(request))
    process = subprocess.run(
        [sys.executable, "-c", CLIENT, str(root / "request.json"), str(root / "out.json"),
         str(root / "out.npz")],
        capture_output=True, text=True, cwd=str(root), timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert process.returncode == 0, process.stderr[-3000:]
    with np.load(root / "out.npz") as loaded:
        outputs = {key: loaded[key] for key in loaded.files}
    references = {
        "shorter_side": np.asarray(model(shorter_side, training=False)),
        "central": np.asarray(model(central, training=False)),
        "pixels": np.asarray(model(pixels, training=False)),
    }
    return dict(report=json.loads((root / "out.json").read_text()), outputs=outputs,
                references=references, model=model, root=root, model_file=model_file,
                dirs={"saved_model": saved_model, "onnx": onnx_dir, "litert": litert_dir,
                      "from_file": from_file})


def _names_of(probabilities):
    """The top-k class names of Keras' probabilities, best first."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :TOP_K]
    return np.asarray(NAMES)[order]


def test_the_client_never_imported_bn_zoo(served):
    assert served["report"]["bn_zoo_imported"] is False


def test_jpeg_bytes_are_served_with_the_photos_names(served):
    """image_bytes of real JPEG files: each photo's own name first, the
    names and probabilities of Keras' model on the same crop (the data
    config's shorter-side bicubic crop; the .keras export's default central
    87.5% bilinear crop)."""
    truth = np.asarray(NAMES)
    for export_name, reference in (("saved_model", "shorter_side"), ("from_file", "central")):
        out = {k: served["outputs"][f"{export_name}/bytes/{k}"]
               for k in ("probabilities", "classes", "scores", "class_names")}
        expected = served["references"][reference]
        np.testing.assert_allclose(out["probabilities"], expected, rtol=0, atol=ATOL,
                                   err_msg=export_name)
        np.testing.assert_array_equal(out["class_names"], _names_of(expected))
        np.testing.assert_array_equal(out["class_names"][:, 0], truth, err_msg=export_name)
        np.testing.assert_array_equal(out["class_names"], truth[out["classes"]])


def test_pixel_signatures_and_portable_files_agree_with_keras(served):
    """serving_default and serving_uint8 of both SavedModels, the ONNX and
    the LiteRT file, on the decoded crops: Keras' probabilities (the
    scaling applied once, by the model's own nested layer)."""
    expected = served["references"]["pixels"]
    for job in ("saved_model/float", "saved_model/uint8", "from_file/float",
                "from_file/uint8", "onnx", "litert"):
        probabilities = served["outputs"][f"{job}/probabilities"]
        np.testing.assert_allclose(probabilities, expected, rtol=0, atol=ATOL, err_msg=job)
        if job.startswith(("saved_model", "from_file")):
            np.testing.assert_array_equal(served["outputs"][f"{job}/class_names"],
                                          _names_of(expected), err_msg=job)


def test_portable_files_carry_the_names_as_metadata_and_labels_txt(served):
    report = served["report"]
    for key in ("onnx/metadata_props", "onnx/custom_metadata_map", "litert/metadata"):
        assert json.loads(report[key]["class_names"]) == list(NAMES), key
    for fmt, filename in (("onnx", "model.onnx"), ("litert", "model.tflite")):
        directory = served["dirs"][fmt]
        assert sorted(os.listdir(directory)) == sorted(["labels.txt", filename])
        with open(os.path.join(directory, "labels.txt"), encoding="utf-8") as f:
            assert f.read().splitlines() == list(NAMES)


def test_saved_models_hold_labels_txt_and_every_signature_returns_names(served):
    for name in ("saved_model", "from_file"):
        assert served["report"][f"{name}/signatures"] == [
            "image_bytes", "serving_default", "serving_uint8"]
        with open(os.path.join(served["dirs"][name], "assets", "labels.txt"),
                  encoding="utf-8") as f:
            assert f.read() == "".join(f"{n}\n" for n in NAMES)


def test_a_mode_for_a_model_that_scales_itself_is_refused(served, tmp_path):
    """The nested PreprocessInput is found: an explicit mode, even the
    model's own, would scale the pixels twice; nothing is written."""
    for mode in ("inception", "imagenet_mean_std"):
        with pytest.raises(ValueError, match="would scale the pixels twice") as raised:
            export.export_model(served["model"], str(tmp_path / "twice"), mode)
        assert "'scaling'" in str(raised.value) and "\n" not in str(raised.value)
    assert not (tmp_path / "twice").exists()


def test_a_wrong_number_of_class_names_is_refused(served, tmp_path):
    for fmt in ("saved_model", "onnx"):
        with pytest.raises(ValueError, match=r"^3 class names for model 'photo_classifier', "
                                             r"which has 4 outputs"):
            export.export_model(served["model"], str(tmp_path / "m"), class_names=NAMES[:3],
                                format=fmt)
    with pytest.raises(ValueError, match="line break"):
        export.export_model(served["model"], str(tmp_path / "m"),
                            class_names=("a", "b\nc", "d", "e"))
    assert not (tmp_path / "m").exists()


def test_command_refuses_a_labels_file_of_the_wrong_length_in_one_line(served, tmp_path):
    labels = tmp_path / "five.txt"
    labels.write_text("".join(f"{n}\n" for n in NAMES + ("extra",)), encoding="utf-8")
    result = commands.run("trainers.export", [
        f"--model_file={served['model_file']}", f"--class_names_file={labels}",
        f"--export_dir={tmp_path / 'm'}"], timeout=300, tf_log_level="2")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith("ERROR (ValueError): ") and "5 class names" in errors[0]
    assert "4 outputs" in errors[0]
    assert not (tmp_path / "m").exists()


def test_model_files_that_cannot_be_exported_are_refused(tmp_path):
    inputs = keras.Input((SIZE, SIZE, 3))
    plain = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(inputs)), name="plain")
    path = tmp_path / "plain.keras"
    plain.save(path)
    with pytest.raises(ValueError, match="does not scale its input.*--preprocessing"):
        export.export_model_file(str(path), str(tmp_path / "m"))
    weights = tmp_path / "plain.weights.h5"
    plain.save_weights(weights)
    with pytest.raises(ValueError, match="not a .keras file.*--model=NAME --weights=FILE"):
        export.export_model_file(str(weights), str(tmp_path / "m"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export.export_model_file(str(tmp_path / "missing.keras"), str(tmp_path / "m"))
    assert not (tmp_path / "m").exists()
    # With the mode it was trained with, it exports; the names default to indices.
    exported = export.export_model_file(str(path), str(tmp_path / "m"),
                                        preprocessing="caffe_resnet")
    assert export.read_class_names(exported) == ("0", "1")


def test_labels_files_are_read_strictly(tmp_path):
    good = tmp_path / "good.txt"
    good.write_bytes("tabby cat\r\ncafé\n\n".encode("utf-8"))
    assert export.read_labels_file(good) == ("tabby cat", "café")
    blank = tmp_path / "blank.txt"
    blank.write_text("a\n\nb\n")
    with pytest.raises(ValueError, match="Line 2 .* is blank"):
        export.read_labels_file(blank)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        export.read_labels_file(latin)


def test_registered_label_sets_name_the_classes():
    """Registered weights' label set, where it describes the outputs:
    ImageNet's sorted synsets (n01440764 tench first), slim's background
    column dropped at 1000 outputs; a new head (10 outputs) is not named."""
    from bn_zoo.export import class_names
    from bn_zoo.models import catalogue

    imagenet = class_names.registered_class_names(catalogue.data_config("bn_inception"), 1000)
    assert imagenet[:2] == ("tench", "goldfish") and len(imagenet) == 1000
    slim = catalogue.data_config("bn_inception", "imagenet")
    assert class_names.registered_class_names(slim, 1000) == imagenet
    assert class_names.registered_class_names(slim, 1001)[:2] == ("background", "tench")
    assert class_names.registered_class_names(catalogue.data_config("bn_inception"), 10) is None


def test_registered_mnist_weights_export_the_digit_names(tmp_path):
    path = export.export_registered_model("bn_mlp", str(tmp_path / "m"), weights="mnist",
                                          format="onnx")
    assert export.read_class_names(path) == tuple("0123456789")
    named = export.export_registered_model(
        "bn_mlp", str(tmp_path / "m"), weights="mnist", format="onnx",
        class_names=[f"digit {d}" for d in range(10)])
    assert export.read_class_names(named)[3] == "digit 3"

