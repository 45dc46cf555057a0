"""Exported SavedModels, served by a fresh process that imports only TensorFlow.

One module-scoped fixture exports the BN MLP (trained a few steps on real
MNIST, then given population statistics) and each distinct Inception network
(tests/export_helpers.py; small: depth multiplier 0.25, 32×32, 10 classes,
non-trivial BN statistics): the MLP four ways (folded or not, with weights as
graph constants or as variables), BN-Inception three ways (all but unfolded
with variables), the others the default way (folded, constants). A
single subprocess that cannot import bn_zoo loads every SavedModel and calls
its signatures, good inputs and bad. The references are
the Keras models in inference mode, fed with preprocessing computed here in
numpy (x/255, x/127.5 − 1) and with TensorFlow's own crop and resize ops.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from bn_zoo import models, population
from bn_zoo.export import export_model, fold_batch_normalization
from export_helpers import (
    CLASSES, INCEPTION_VARIANTS, SIZE, bn_layers, cache_dir, inception, perturb_affine,
)

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

TOP_K = 3
# Served and Keras probabilities agree to ATOL. Through Inception's ~20
# conv+BN layers, float32 itself moves the logits by ~1e-5 of their scale
# (here the Keras float32 model differs from a float64 one by up to 9e-6 in
# probability, and an *unfolded* export from the same Keras model by up to
# 1.4e-5), which moves a probability p by up to ~1e-4·p: RTOL allows that
# for the Inception variants, still 10x below any folding error (a wrong
# per-channel scale or bias changes probabilities by > 1e-2 relative).
ATOL = 1e-5
INCEPTION_RTOL = 1e-3
# Export kinds: the options of `export_model` (the default is "folded").
EXPORTS = {
    "folded": dict(fold_batch_norm=True, constant_weights=True),
    "folded_variables": dict(fold_batch_norm=True, constant_weights=False),
    "unfolded": dict(fold_batch_norm=False, constant_weights=True),
    "unfolded_variables": dict(fold_batch_norm=False, constant_weights=False),
}

# Every kind for the MLP. Each property of a kind is shown on a conv network
# by BN-Inception's three (folded or not; constants or variables; an
# unfolded export is the slowest to write). The other Inception networks
# are exported the default way, which checks the folding of each of their
# layer kinds (LRN, dropout, sigmoid, moving statistics); their ONNX files
# (tests/test_export_formats.py) check the same folding once more.
KINDS = {"bn_mlp": tuple(EXPORTS), "bn_inception": ("folded", "folded_variables", "unfolded")}
# The MLP is exported with these class names (the others without: indices).
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
               "nine")


def kinds_of(model):
    return KINDS.get(model, ("folded",))


# Runs in a fresh interpreter: TensorFlow only; importing bn_zoo fails.
CLIENT = r"""
import importlib.abc, json, sys
import numpy as np
import tensorflow as tf

class NoBnZoo(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "bn_zoo":
            raise ImportError("serving must not need bn_zoo")

sys.meta_path.insert(0, NoBnZoo())
jobs_file, out_json, out_npz = sys.argv[1:]
with open(jobs_file) as f:
    jobs = json.load(f)
loaded, results, arrays = {}, {}, {}
for job in jobs:
    if job["path"] not in loaded:
        loaded[job["path"]] = tf.saved_model.load(job["path"])
    function = loaded[job["path"]].signatures[job["signature"]]
    inputs = {}
    for key, value in job["inputs"].items():
        if isinstance(value, str) and value.endswith(".npy"):
            inputs[key] = tf.constant(np.load(value))
        else:  # Files of encoded images, in any nesting.
            read = lambda v: [read(x) for x in v] if isinstance(v, list) else open(v, "rb").read()
            inputs[key] = tf.constant(read(value), tf.string)
    try:
        outputs = function(**inputs)
    except Exception as e:
        results[job["id"]] = {"error": type(e).__name__, "message": str(e)}
        continue
    results[job["id"]] = {"outputs": sorted(outputs)}
    for key, value in outputs.items():
        value = value.numpy()
        if value.dtype == object:  # Strings: saved as unicode, not pickled objects.
            value = np.char.decode(value.astype(np.bytes_), "utf-8")
        arrays[job["id"] + "/" + key] = value

def spec(t):
    return [t.dtype.name, None if t.shape.rank is None else t.shape.as_list()]

info = {}
for path, model in loaded.items():
    op_types = set()
    signatures = {}
    for name, function in model.signatures.items():
        graph = function.graph.as_graph_def()
        op_types.update(n.op for n in graph.node)
        for f in graph.library.function:
            op_types.update(n.op for n in f.node_def)
        signatures[name] = {
            "inputs": {k: spec(t) for k, t in function.structured_input_signature[1].items()},
            "outputs": {k: spec(t) for k, t in function.structured_outputs.items()},
        }
    info[path] = {"op_types": sorted(op_types), "signatures": signatures,
                  "variables": [name for name, _ in tf.train.list_variables(
                      path + "/variables/variables") if not name.startswith("_")]}
with open(out_json, "w") as f:
    json.dump({"results": results, "info": info,
               "bn_zoo_imported": any(m.split(".")[0] == "bn_zoo" for m in sys.modules)}, f)
np.savez(out_npz, **arrays)
"""


def _mnist(split, count):
    images, labels = tfds.as_numpy(
        tfds.load("mnist", split=f"{split}[:{count}]", as_supervised=True,
                  batch_size=-1, download=False)
    )
    return images, labels


def _trained_bn_mlp():
    """The BN MLP after 20 SGD steps on MNIST, with perturbed γ, β and
    population statistics: every BN map is far from the identity."""
    keras.utils.set_random_seed(0)
    model = models.create_model("bn_mlp", weights=None)
    images, labels = _mnist("train", 1200)
    x = images.astype("float32") / 255.0
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    model.fit(x, labels, batch_size=60, epochs=1, verbose=0, shuffle=False)
    perturb_affine(model, np.random.default_rng(0))
    population.estimate(model, [x[i:i + 60] for i in range(0, 300, 60)], num_batches=5)
    return model


def _crop_resize(image, size, fraction=0.875):
    """Inception evaluation preprocessing with TensorFlow's own ops."""
    cropped = tf.image.central_crop(tf.constant(image), fraction)
    return tf.image.resize(cropped[None], [size, size])[0].numpy() / 127.5 - 1.0


def _predict(model, x):
    return np.asarray(model(x.astype("float32"), training=False))


class _Jobs:
    """The calls the fresh client process makes, with their inputs on disk
    and the Keras reference outputs kept here."""

    def __init__(self, directory):
        self.directory = directory
        self.jobs, self.expected = [], {}

    def array(self, name, value):
        path = str(self.directory / f"{name}.npy")
        np.save(path, value)
        return path

    def add(self, job_id, path, signature, inputs, reference=None):
        self.jobs.append(
            {"id": job_id, "path": path, "signature": signature, "inputs": inputs}
        )
        if reference is not None:
            self.expected[job_id] = reference


def _export_all(model, directory, name, preprocessing, class_names=None):
    """{kind: path} of `model`'s exports, one per kind of `kinds_of(name)`."""
    return {
        kind: export_model(
            model, str(directory / name / kind), preprocessing, top_k=TOP_K,
            class_names=class_names, **EXPORTS[kind]
        )
        for kind in kinds_of(name)
    }


def _with_pixel(images, value):
    """Real digits as float32, with one pixel of the second image set to `value`."""
    bad = images[:3].astype("float32")
    bad[1, 14, 9, 0] = value
    return bad


def _add_mnist_jobs(jobs, root, paths):
    mlp = _trained_bn_mlp()
    images, _ = _mnist("test", 64)
    reference = _predict(mlp, images / 255.0)
    as_float = jobs.array("mnist_f32", images.astype("float32"))
    as_uint8 = jobs.array("mnist_u8", images)
    for kind, path in _export_all(mlp, root, "bn_mlp", "mnist", DIGIT_NAMES).items():
        paths[f"bn_mlp/{kind}"] = path
        jobs.add(f"bn_mlp/{kind}/float", path, "serving_default", {"images": as_float}, reference)
        jobs.add(f"bn_mlp/{kind}/uint8", path, "serving_uint8", {"images": as_uint8}, reference)
    bad = {
        "rank3": ("serving_default", np.zeros((28, 28, 1), "float32")),
        "rank5": ("serving_default", np.zeros((1, 1, 28, 28, 1), "float32")),
        "channels": ("serving_default", np.zeros((2, 28, 28, 3), "float32")),
        "size": ("serving_default", np.zeros((2, 32, 32, 1), "float32")),
        "empty": ("serving_default", np.zeros((0, 28, 28, 1), "float32")),
        "float64": ("serving_default", np.zeros((2, 28, 28, 1), "float64")),
        "int32_to_uint8": ("serving_uint8", np.zeros((2, 28, 28, 1), "int32")),
        # Valid shapes, invalid values: one bad pixel among real digits.
        "nan": ("serving_default", _with_pixel(images, np.nan)),
        "inf": ("serving_default", _with_pixel(images, np.inf)),
        "negative": ("serving_default", _with_pixel(images, -1.0)),
        "above_255": ("serving_default", _with_pixel(images, 255.5)),
        "scaled_to_unit_range": ("serving_default", images.astype("float32") / 255.0 - 0.5),
    }
    for case, (signature, value) in bad.items():
        inputs = {"images": jobs.array(f"bad_mlp_{case}", value)}
        jobs.add(f"bad/mlp/{case}", paths["bn_mlp/folded"], signature, inputs)
    return mlp, images


def _add_inception_jobs(jobs, root, paths, cache):
    rng = np.random.default_rng(42)
    square = rng.integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    other = rng.integers(0, 256, (2, SIZE + 9, SIZE + 4, 3), dtype=np.uint8)
    encoded = []
    for i, image in enumerate(other):
        encoded.append(str(jobs.directory / f"image{i}.png"))
        tf.io.write_file(encoded[-1], tf.io.encode_png(image))
    # Preprocessed inputs of the references: numpy scaling, TensorFlow's ops.
    preprocessed = {
        "square": square / 127.5 - 1.0,
        "resized": tf.image.resize(other.astype("float32"), [SIZE, SIZE]).numpy() / 127.5 - 1.0,
        "cropped": np.stack([_crop_resize(image, SIZE) for image in other]),
    }
    calls = {  # job: (signature, inputs, reference input)
        "float": ("serving_default", {"images": jobs.array("square_f32", square.astype("float32"))},
                  "square"),
        "uint8": ("serving_uint8", {"images": jobs.array("square_u8", square)}, "square"),
        "resized": ("serving_default", {"images": jobs.array("other_f32", other.astype("float32"))},
                    "resized"),
        "bytes": ("image_bytes", {"image_bytes": encoded}, "cropped"),
    }
    for seed, name in enumerate(INCEPTION_VARIANTS):
        model = inception(name, seed, cache)
        references = {key: _predict(model, x) for key, x in preprocessed.items()}
        for kind, path in _export_all(model, root, name, "inception").items():
            paths[f"{name}/{kind}"] = path
            for call, (signature, inputs, reference) in calls.items():
                jobs.add(f"{name}/{kind}/{call}", path, signature, inputs, references[reference])

    garbage = jobs.directory / "garbage.bin"
    garbage.write_bytes(b"definitely not an image")
    gif = jobs.directory / "image.gif"  # A 1x1 GIF89a: not UTF-8 past its magic.
    gif.write_bytes(b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9"
                    b"\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00"
                    b"\x02\x02D\x01\x00;")
    truncated = jobs.directory / "truncated.png"
    with open(encoded[0], "rb") as f:
        truncated.write_bytes(f.read()[:60])
    bad = {
        "channels": ("serving_default",
                     {"images": jobs.array("gray", np.zeros((1, SIZE, SIZE, 1), "float32"))}),
        "rank2": ("serving_default",
                  {"images": jobs.array("rank2", np.zeros((SIZE, SIZE), "float32"))}),
        "garbage_bytes": ("image_bytes", {"image_bytes": [encoded[0], str(garbage)]}),
        "truncated_bytes": ("image_bytes", {"image_bytes": [str(truncated)]}),
        "empty_bytes": ("image_bytes", {"image_bytes": []}),
        "gif_bytes": ("image_bytes", {"image_bytes": [str(gif)]}),
        "bytes_2d": ("image_bytes", {"image_bytes": [[encoded[0], encoded[1]]]}),
        "bytes_scalar": ("image_bytes", {"image_bytes": encoded[0]}),
        "pixels_nan": ("serving_default", {"images": jobs.array(
            "nan_rgb", (np.where(np.arange(3) == 1, np.nan, 100.0) * np.ones((1, 40, 36, 3))).astype("float32"))}),
    }
    for case, (signature, inputs) in bad.items():
        jobs.add(f"bad/inception/{case}", paths["bn_inception/folded"], signature, inputs)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    (root / "data").mkdir()
    jobs, paths = _Jobs(root / "data"), {}
    mlp, mnist_images = _add_mnist_jobs(jobs, root, paths)
    _add_inception_jobs(jobs, root, paths, cache_dir(tmp_path_factory))

    jobs_file, out_json, out_npz = root / "jobs.json", root / "out.json", root / "out.npz"
    jobs_file.write_text(json.dumps(jobs.jobs))
    process = subprocess.run(
        [sys.executable, "-c", CLIENT, str(jobs_file), str(out_json), str(out_npz)],
        capture_output=True, text=True, cwd=str(root), timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert process.returncode == 0, process.stderr[-3000:]
    with np.load(out_npz) as arrays:
        outputs = {key: arrays[key] for key in arrays.files}
    return dict(
        report=json.loads(out_json.read_text()), outputs=outputs, expected=jobs.expected,
        paths=paths, mlp=mlp, mnist_images=mnist_images,
    )


def _outputs(served, job_id):
    result = served["report"]["results"][job_id]
    assert "error" not in result, result
    names = ("probabilities", "classes", "scores", "class_names")
    return {name: served["outputs"][f"{job_id}/{name}"] for name in names}


def test_client_process_never_imported_bn_zoo(served):
    assert served["report"]["bn_zoo_imported"] is False


@pytest.mark.parametrize(
    "model, fold",
    [(m, k) for m in ("bn_mlp",) + INCEPTION_VARIANTS for k in sorted(kinds_of(m))],
)
def test_served_probabilities_match_keras(served, model, fold):
    jobs = ("float", "uint8") if model == "bn_mlp" else ("float", "uint8", "resized", "bytes")
    for job in jobs:
        job_id = f"{model}/{fold}/{job}"
        out = _outputs(served, job_id)
        expected = served["expected"][job_id]
        rtol = 0.0 if model == "bn_mlp" else INCEPTION_RTOL
        np.testing.assert_allclose(
            out["probabilities"], expected, rtol=rtol, atol=ATOL, err_msg=job_id
        )
        # Top-k: scores are the k largest probabilities, in order, at `classes`.
        assert out["classes"].dtype == np.int64
        assert out["classes"].shape == (len(expected), TOP_K)
        np.testing.assert_array_equal(
            np.take_along_axis(out["probabilities"], out["classes"], axis=1), out["scores"]
        )
        kth = np.sort(out["probabilities"], axis=1)[:, ::-1][:, :TOP_K]
        np.testing.assert_array_equal(out["scores"], kth)


def test_served_class_names_are_those_of_the_classes(served):
    """Every signature returns `class_names` beside `classes`: the MLP's the
    names it was exported with, at Keras' own top classes; the Inception
    networks, exported without names, the class indices."""
    for model in ("bn_mlp",) + INCEPTION_VARIANTS:
        for kind in kinds_of(model):
            calls = ("float", "uint8") if model == "bn_mlp" else ("float", "uint8", "bytes")
            for call in calls:
                job_id = f"{model}/{kind}/{call}"
                out = _outputs(served, job_id)
                names = DIGIT_NAMES if model == "bn_mlp" else [str(i) for i in range(CLASSES)]
                expected = np.asarray(names)[out["classes"]]
                np.testing.assert_array_equal(out["class_names"], expected, err_msg=job_id)
                # Top-1 against Keras' own argmax, where it is not a near tie.
                reference = served["expected"][job_id]
                ordered = np.sort(reference, axis=1)
                clear = ordered[:, -1] - ordered[:, -2] > 1e-4
                np.testing.assert_array_equal(
                    out["class_names"][clear, 0],
                    np.asarray(names)[reference.argmax(1)][clear], err_msg=job_id)


def test_saved_models_hold_labels_txt_as_an_asset(served):
    for key, path in served["paths"].items():
        names = DIGIT_NAMES if key.startswith("bn_mlp/") else [str(i) for i in range(CLASSES)]
        with open(os.path.join(path, "assets", "labels.txt"), encoding="utf-8") as f:
            assert f.read() == "".join(f"{n}\n" for n in names), key


def test_trained_mlp_classifies_real_digits(served):
    """The exported MLP is the trained one, not a fresh initialization."""
    out = _outputs(served, "bn_mlp/folded/float")
    _, labels = _mnist("test", 64)
    assert np.mean(out["classes"][:, 0] == labels) > 0.6


def test_folded_exports_have_no_batch_norm(served):
    assert not bn_layers(fold_batch_normalization(served["mlp"]))
    info = served["report"]["info"]
    for key, path in served["paths"].items():
        # An unfolded BN runs the fused kernel (conv inputs) or computes
        # 1/√(Var + ε) (dense inputs): the folded graph has neither.
        name, kind = key.split("/")
        has_bn = bool({"Rsqrt", "FusedBatchNormV3"} & set(info[path]["op_types"]))
        assert has_bn == (kind.startswith("unfolded") and name != "inception"), key


def test_constant_weight_exports_hold_no_variables(served):
    info = served["report"]["info"]
    for key, path in served["paths"].items():
        kind = key.split("/")[1]
        constant = EXPORTS[kind]["constant_weights"]
        assert bool(info[path]["variables"]) != constant, key
        assert ("ReadVariableOp" in info[path]["op_types"]) != constant, key


def test_signature_names_dtypes_and_shapes(served):
    info = served["report"]["info"]
    outputs = {
        "probabilities": ["float32", [None, CLASSES]],
        "classes": ["int64", [None, TOP_K]],
        "scores": ["float32", [None, TOP_K]],
        "class_names": ["string", [None, TOP_K]],
    }
    mlp = info[served["paths"]["bn_mlp/folded"]]["signatures"]
    assert sorted(mlp) == ["serving_default", "serving_uint8"]
    assert mlp["serving_default"] == {"inputs": {"images": ["float32", None]}, "outputs": outputs}
    assert mlp["serving_uint8"] == {"inputs": {"images": ["uint8", None]}, "outputs": outputs}
    inception = info[served["paths"]["bn_inception/unfolded"]]["signatures"]
    assert sorted(inception) == ["image_bytes", "serving_default", "serving_uint8"]
    # Unknown rank, as `images`: a run-time assertion checks it is [batch].
    assert inception["image_bytes"] == {
        "inputs": {"image_bytes": ["string", None]}, "outputs": outputs,
    }


BAD_INPUTS = {
    "bad/mlp/rank3": "must have shape [batch, 28, 28, 1]",
    "bad/mlp/rank5": "must have shape [batch, 28, 28, 1]",
    "bad/mlp/channels": "must have shape [batch, 28, 28, 1]",
    "bad/mlp/size": "must have shape [batch, 28, 28, 1]",
    "bad/mlp/empty": "non-empty batch",
    "bad/mlp/float64": "expected to be a float tensor but is a double tensor",
    "bad/mlp/int32_to_uint8": "expected to be a uint8 tensor but is a int32 tensor",
    "bad/inception/channels": "must have shape [batch, height, width, 3]",
    "bad/inception/rank2": "must have shape [batch, height, width, 3]",
    "bad/inception/garbage_bytes": "is not an encoded JPEG or PNG image",
    "bad/inception/truncated_bytes": "PNG",
    "bad/inception/empty_bytes": "holds at least one encoded image",
    "bad/mlp/nan": "must hold finite pixel values in [0, 255]",
    "bad/mlp/inf": "must hold finite pixel values in [0, 255]",
    "bad/mlp/negative": "must hold finite pixel values in [0, 255]",
    "bad/mlp/above_255": "must hold finite pixel values in [0, 255]",
    "bad/mlp/scaled_to_unit_range": "raw pixels, not scaled ones",
    "bad/inception/pixels_nan": "must hold finite pixel values in [0, 255]",
    "bad/inception/gif_bytes": "is not an encoded JPEG or PNG image",
    "bad/inception/bytes_2d": "`image_bytes` must be a 1-D string tensor [batch]",
    "bad/inception/bytes_scalar": "`image_bytes` must be a 1-D string tensor [batch]",
}
# What the messages report about the input received (the value checks).
BAD_INPUT_DETAILS = {
    "bad/mlp/nan": "] [0 255] [1]",
    "bad/mlp/inf": "] [0 255] [1]",
    "bad/mlp/negative": "] [-1 255] [0]",
    "bad/mlp/above_255": "] [0 255.5] [0]",
    "bad/mlp/scaled_to_unit_range": "] [-0.5 0.5] [0]",
    "bad/inception/pixels_nan": "] [100 100] [1440]",
    "bad/inception/gif_bytes": "[GIF89a",
    "bad/inception/bytes_2d": "Received shape:] [1 2]",
    "bad/inception/bytes_scalar": "Received shape:] []",
}


@pytest.mark.parametrize("job_id", sorted(BAD_INPUTS))
def test_bad_signature_inputs_fail_clearly(served, job_id):
    result = served["report"]["results"][job_id]
    assert "error" in result, f"{job_id} returned outputs instead of failing"
    assert result["error"] == "InvalidArgumentError"
    assert BAD_INPUTS[job_id] in result["message"], result["message"][:500]
    assert BAD_INPUT_DETAILS.get(job_id, "") in result["message"], result["message"][:500]


def test_pixel_value_check_passes_the_whole_range(served):
    """0 and 255 themselves are served (real digits hold both)."""
    images = served["mnist_images"]
    assert images.min() == 0 and images.max() == 255
    assert "error" not in served["report"]["results"]["bn_mlp/folded/float"]


def _cli(*args, timeout=180):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        ["saved_model_cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_saved_model_cli_show_and_run(served, tmp_path):
    path = served["paths"]["bn_mlp/folded"]
    shown = _cli("show", "--dir", path, "--all")
    assert shown.returncode == 0, shown.stderr[-2000:]
    for text in (
        "signature_def['serving_default']", "signature_def['serving_uint8']",
        "inputs['images']", "DT_FLOAT", "DT_UINT8", "outputs['probabilities']",
        "outputs['classes']", "DT_INT64", "outputs['scores']",
    ):
        assert text in shown.stdout, text

    images = served["mnist_images"][:4].astype("float32")
    np.save(tmp_path / "images.npy", images)
    run = _cli(
        "run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
        "--inputs", f"images={tmp_path / 'images.npy'}", "--outdir", str(tmp_path / "out"),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    probabilities = np.load(tmp_path / "out" / "probabilities.npy")
    expected = _predict(served["mlp"], images / 255.0)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=ATOL)
