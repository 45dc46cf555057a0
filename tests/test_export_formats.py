"""ONNX and LiteRT exports, run by their own runtimes in a process without TensorFlow.

One module-scoped fixture exports the BN MLP (trained on real MNIST, with
population statistics) as ONNX (folded and not), LiteRT float32 and LiteRT
int8 (calibrated on MNIST training images), and each Inception network
(tests/export_helpers.py: depth multiplier 0.25, 32×32, 10 classes,
non-trivial BN statistics) as
ONNX and LiteRT float32. A single subprocess, in which TensorFlow is never
imported, reads the raw MNIST IDX files itself and runs every file with
onnxruntime or ai_edge_litert. The references are the Keras models in
inference mode, fed with numpy's scaling (x/255, x/127.5 − 1) and
TensorFlow's own resize.
"""

import gzip
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from bn_zoo import models, population
from bn_zoo.data import mnist, tfrecords
from bn_zoo.export import calibration, export_model, formats
from commands import ROOT
from export_helpers import INCEPTION_VARIANTS, SIZE, cache_dir, inception

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

MNIST_DIR = os.path.join(ROOT, os.pardir, "shared", "data", "mnist")
# Every variant goes to ONNX; to LiteRT the two that hold every kind of
# layer between them (LRN and dropout; BN after every convolution, folded),
# which keeps this module's time in bounds (a conversion takes seconds).
FORMATS_OF = {name: ("onnx", "litert") for name in INCEPTION_VARIANTS}
TOP_K = 3
ONNX_IMAGES = 1000  # The ONNX check: the first 1,000 MNIST test images.
# Float exports agree with Keras to ATOL in probability. For Inception,
# float32 rounding through ~20 conv(+BN) layers moves a probability p by up
# to ~1e-4·p (tests/test_export.py measures it against float64), and the
# runtimes order their sums differently from TensorFlow: INCEPTION_RTOL
# allows that, 10x below any folding error (> 1e-2·p).
ATOL = 1e-5
INCEPTION_RTOL = 1e-3
INT8_MAX_ACCURACY_DROP = 0.005  # within 0.5 points of float32.
CALIBRATION_STEPS = 20
# The MLP's files carry these class names; the Inception ones the indices.
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
               "nine")

# Runs in a fresh interpreter with onnxruntime, ai_edge_litert and numpy;
# TensorFlow must never be imported.
CLIENT = r"""
import gzip, json, sys
import numpy as np
import onnx
import onnxruntime
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

jobs_file, out_json, out_npz, mnist_dir = sys.argv[1:]

def idx(name):
    with gzip.open(f"{mnist_dir}/{name}", "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)

mnist_images = idx("t10k-images-idx3-ubyte.gz")[..., None].astype(np.float32)

def load_input(spec):
    if spec.startswith("mnist:"):
        return mnist_images[:int(spec[6:])]
    return np.load(spec)

def run_onnx(path, x):
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"images": x})))

def run_litert(path, x, strict):
    interpreter = Interpreter(model_path=path)
    if strict:  # The Interpreter API that checks shapes: only -1 dims may change.
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, x.shape, strict=True)
        interpreter.allocate_tensors()
    return interpreter.get_signature_runner("serving_default")(images=x)

def labels_beside(path):
    with open(path.rsplit("/", 1)[0] + "/labels.txt", encoding="utf-8") as f:
        return f.read()

def litert_metadata(path):
    with open(path, "rb") as f:
        model = schema.Model.GetRootAs(bytearray(f.read()), 0)
    entries = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        entries[entry.Name().decode()] = bytes(model.Buffers(entry.Buffer()).DataAsNumpy())
    return entries

def describe(fmt, path):
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return {
            "class_names": {p.key: p.value for p in onnx.load(path).metadata_props}.get(
                "class_names"),
            "labels_txt": labels_beside(path),
            "inputs": [[i.name, i.type, [d if isinstance(d, int) else None for d in i.shape]]
                       for i in session.get_inputs()],
            "outputs": {o.name: o.type for o in session.get_outputs()},
            "op_counts": {t: [n.op_type for n in onnx.load(path).graph.node].count(t)
                          for t in {n.op_type for n in onnx.load(path).graph.node}},
        }
    interpreter = Interpreter(model_path=path)
    runner = interpreter.get_signature_runner("serving_default")
    return {
        "class_names": litert_metadata(path)["class_names"].decode("utf-8"),
        "labels_txt": labels_beside(path),
        "signatures": interpreter.get_signature_list(),
        "inputs": {k: [np.dtype(v["dtype"]).name, v["shape_signature"].tolist()]
                   for k, v in runner.get_input_details().items()},
        "outputs": {k: np.dtype(v["dtype"]).name
                    for k, v in runner.get_output_details().items()},
        "int8_tensors": sum(d["dtype"] == np.int8 for d in interpreter.get_tensor_details()),
    }

with open(jobs_file) as f:
    jobs = json.load(f)
results, arrays, info = {}, {}, {}
for job in jobs:
    if job["path"] not in info:
        info[job["path"]] = describe(job["format"], job["path"])
    x = load_input(job["input"])
    try:
        if job["format"] == "onnx":
            outputs = run_onnx(job["path"], x)
        else:
            outputs = run_litert(job["path"], x, job.get("strict", False))
    except Exception as e:
        results[job["id"]] = {"error": type(e).__name__, "message": str(e)}
        continue
    results[job["id"]] = {"outputs": {k: [v.dtype.name, list(v.shape)] for k, v in outputs.items()}}
    for key, value in outputs.items():
        arrays[job["id"] + "/" + key] = value
with open(out_json, "w") as f:
    json.dump({"results": results, "info": info,
               "tensorflow_imported": "tensorflow" in sys.modules}, f)
np.savez(out_npz, **arrays)
"""


def _idx(name):
    """An MNIST IDX file of ../shared/data/mnist, as a uint8 array."""
    with gzip.open(os.path.join(MNIST_DIR, name), "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _trained_bn_mlp():
    """The BN MLP after 400 SGD steps on MNIST (~91% test accuracy), with
    population statistics: a network whose accuracy int8 could lose."""
    keras.utils.set_random_seed(0)
    model = models.create_model("bn_mlp", weights=None)
    images, labels = mnist.load("train[:24000]")
    x = images.astype("float32") / 255.0
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    model.fit(x, labels, batch_size=60, epochs=1, verbose=0, shuffle=False)
    population.estimate(model, [x[i:i + 600] for i in range(0, 6000, 600)], num_batches=10)
    return model


def _predict(model, x, batch_size=2000):
    return np.concatenate([np.asarray(model(x[i:i + batch_size].astype("float32"),
                                            training=False))
                           for i in range(0, len(x), batch_size)])


def _file(path, fmt):
    return os.path.join(path, formats.FILENAMES[fmt])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    jobs, expected, paths = [], {}, {}

    def array(name, value):
        path = str(root / f"{name}.npy")
        np.save(path, value.astype("float32"))
        return path

    def add(job_id, fmt, path, input_spec, reference=None, **extra):
        jobs.append({"id": job_id, "format": fmt, "path": path, "input": input_spec, **extra})
        if reference is not None:
            expected[job_id] = reference

    # The MLP, four ways; the test images are read from the IDX files here
    # (and by the client), the labels too.
    mlp = _trained_bn_mlp()
    test_images, labels = _idx("t10k-images-idx3-ubyte.gz")[..., None], _idx(
        "t10k-labels-idx1-ubyte.gz")
    keras_probabilities = _predict(mlp, test_images / 255.0)
    exports = {
        "onnx": dict(format="onnx"),
        "onnx_unfolded": dict(format="onnx", fold_batch_norm=False),
        "litert": dict(format="litert"),
        "litert_int8": dict(format="litert", quantize="int8",
                            calibration_batches=calibration.mnist_batches(CALIBRATION_STEPS)),
    }
    for kind, options in exports.items():
        fmt = options["format"]
        paths[f"bn_mlp/{kind}"] = path = _file(
            export_model(mlp, str(root / "bn_mlp" / kind), "mnist", top_k=TOP_K,
                         class_names=DIGIT_NAMES, **options), fmt)
        count = ONNX_IMAGES if fmt == "onnx" else len(test_images)
        add(f"bn_mlp/{kind}", fmt, path, f"mnist:{count}", keras_probabilities[:count])
    bad = {
        "size": np.zeros((2, 32, 32, 1)),
        "rank3": np.zeros((28, 28, 1)),
        "channels": np.zeros((2, 28, 28, 3)),
    }
    for case, value in bad.items():
        add(f"bad/onnx/{case}", "onnx", paths["bn_mlp/onnx"], array(f"bad_{case}", value))
        add(f"bad/litert/{case}", "litert", paths["bn_mlp/litert"], array(f"bad_{case}", value))
        add(f"bad/litert_strict/{case}", "litert", paths["bn_mlp/litert"],
            array(f"bad_{case}", value), strict=True)
    add("bad/litert_strict/good", "litert", paths["bn_mlp/litert"], array(
        "good", test_images[:3]), keras_probabilities[:3], strict=True)
    # Shapes with the MLP's 784 values per row, which LiteRT's runner takes
    # (it resizes the input to any shape), and an empty batch.
    for case, shape in LITERT_784_SHAPES.items():
        add(f"bad/litert/{case}", "litert", paths["bn_mlp/litert"],
            array(f"bad_{case}", np.full(shape, 128.0)))
    add("bad/litert_int8/56x14", "litert", paths["bn_mlp/litert_int8"],
        array("bad_56x14", np.full(LITERT_784_SHAPES["56x14"], 128.0)))
    # Values serving_default refuses: every MLP file, one bad value among good
    # digits (or all bad); and the borders it takes, which must answer as Keras.
    digits = test_images[:4].astype("float32")
    for case, value in BAD_VALUES.items():
        x = digits.copy()
        x[1, 10, 12, 0] = value
        for kind in ("onnx", "litert", "litert_int8"):
            add(f"values/{kind}/{case}", "onnx" if kind == "onnx" else "litert",
                paths[f"bn_mlp/{kind}"], array(f"value_{case}", x))
    scaled = digits / 127.5 - 1.0  # Already scaled to [-1, 1]: must not be served.
    borders = digits.copy()
    borders[:, :3] = -0.0
    borders[:, -3:] = 255.0
    for kind in ("onnx", "litert", "litert_int8"):
        fmt = "onnx" if kind == "onnx" else "litert"
        add(f"values/{kind}/scaled", fmt, paths[f"bn_mlp/{kind}"], array("scaled", scaled))
        add(f"values/{kind}/empty", fmt, paths[f"bn_mlp/{kind}"],
            array("empty", np.zeros((0, 28, 28, 1))))
        add(f"borders/{kind}", fmt, paths[f"bn_mlp/{kind}"], array("borders", borders),
            _predict(mlp, np.abs(borders) / 255.0))

    # The Inception networks: square images, and others resized in the graph.
    rng = np.random.default_rng(42)
    square = rng.integers(0, 256, (3, SIZE, SIZE, 3)).astype("float32")
    other = rng.integers(0, 256, (2, SIZE + 9, SIZE + 4, 3)).astype("float32")
    resized = tf.image.resize(other, [SIZE, SIZE]).numpy()
    inputs = {"square": array("square", square), "resized": array("other", other)}
    for seed, name in enumerate(INCEPTION_VARIANTS):
        model = inception(name, seed, cache_dir(tmp_path_factory))
        references = {"square": _predict(model, square / 127.5 - 1.0),
                      "resized": _predict(model, resized / 127.5 - 1.0)}
        for fmt in FORMATS_OF[name]:
            paths[f"{name}/{fmt}"] = path = _file(
                export_model(model, str(root / name / fmt), "inception", top_k=TOP_K,
                             format=fmt), fmt)
            for case, spec in inputs.items():
                add(f"{name}/{fmt}/{case}", fmt, path, spec, references[case])
    # The Inception family takes any height and width (resized), but not
    # other channel counts or a missing batch dimension.
    inception_bad = {"gray": (1, SIZE, SIZE, 1), "rgba": (1, SIZE, SIZE, 4),
                     "six": (1, SIZE, SIZE, 6), "rank3": (SIZE, SIZE, 3),
                     "rank5": (1, 1, SIZE, SIZE, 3), "empty": (0, SIZE, SIZE, 3),
                     "no_height": (1, 0, SIZE, 3)}
    for case, shape in inception_bad.items():
        for fmt in ("onnx", "litert"):
            add(f"bad/{fmt}/inception_{case}", fmt, paths[f"bn_inception/{fmt}"],
                array(f"inception_{case}", np.full(shape, 128.0)))
    nan_image = np.full((2, SIZE + 3, SIZE, 3), 128.0)
    nan_image[1, 4, 5, 2] = np.nan
    for fmt in ("onnx", "litert"):
        add(f"values/{fmt}/inception_nan", fmt, paths[f"bn_inception/{fmt}"],
            array("inception_nan", nan_image))

    jobs_file, out_json, out_npz = root / "jobs.json", root / "out.json", root / "out.npz"
    jobs_file.write_text(json.dumps(jobs))
    process = subprocess.run(
        [sys.executable, "-c", CLIENT, str(jobs_file), str(out_json), str(out_npz), MNIST_DIR],
        capture_output=True, text=True, cwd=str(root), timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    with np.load(out_npz) as loaded:
        outputs = {key: loaded[key] for key in loaded.files}
    return dict(report=json.loads(out_json.read_text()), outputs=outputs, expected=expected,
                paths=paths, labels=labels, keras_probabilities=keras_probabilities)


def _outputs(served, job_id):
    result = served["report"]["results"][job_id]
    assert "error" not in result, result
    return {name: served["outputs"][f"{job_id}/{name}"]
            for name in ("probabilities", "classes", "scores")}


def _accuracy(probabilities, labels):
    return float(np.mean(np.argmax(probabilities, axis=1) == labels[:len(probabilities)]))


def test_runtime_process_never_imported_tensorflow(served):
    assert served["report"]["tensorflow_imported"] is False


def test_every_file_carries_its_class_names(served):
    """ONNX `metadata_props["class_names"]` and the LiteRT flatbuffer's
    metadata entry "class_names" (int8 included), JSON arrays, read back with
    onnx and the TFLite schema; labels.txt beside, one name per line."""
    for key, path in served["paths"].items():
        names = list(DIGIT_NAMES) if key.startswith("bn_mlp/") else [
            str(i) for i in range(10)]
        info = served["report"]["info"][path]
        assert json.loads(info["class_names"]) == names, key
        assert info["labels_txt"] == "".join(f"{n}\n" for n in names), key


def test_onnx_mlp_matches_keras_on_real_digits(served):
    """The first 1,000 MNIST test images: probabilities to 1e-5, same accuracy."""
    labels = served["labels"][:ONNX_IMAGES]
    keras_accuracy = _accuracy(served["keras_probabilities"][:ONNX_IMAGES], labels)
    assert keras_accuracy > 0.85  # A trained network, not a fresh one.
    for kind in ("onnx", "onnx_unfolded"):
        out = _outputs(served, f"bn_mlp/{kind}")
        np.testing.assert_allclose(out["probabilities"], served["expected"][f"bn_mlp/{kind}"],
                                   rtol=0, atol=ATOL, err_msg=kind)
        assert _accuracy(out["probabilities"], labels) == keras_accuracy
        np.testing.assert_array_equal(out["classes"][:, 0], np.argmax(out["probabilities"], 1))


def test_litert_float_mlp_matches_keras_on_all_test_digits(served):
    out = _outputs(served, "bn_mlp/litert")
    expected = served["expected"]["bn_mlp/litert"]
    np.testing.assert_allclose(out["probabilities"], expected, rtol=0, atol=ATOL)
    assert _accuracy(out["probabilities"], served["labels"]) == _accuracy(
        expected, served["labels"])


def test_int8_litert_mlp_keeps_float_accuracy(served):
    """The int8 file within 0.5 points of float on the 10,000 test images."""
    labels = served["labels"]
    float_accuracy = _accuracy(_outputs(served, "bn_mlp/litert")["probabilities"], labels)
    int8 = _outputs(served, "bn_mlp/litert_int8")
    int8_accuracy = _accuracy(int8["probabilities"], labels)
    print(f"\nMNIST test accuracy, 10,000 images: Keras "
          f"{_accuracy(served['keras_probabilities'], labels):.4f}, LiteRT float32 "
          f"{float_accuracy:.4f}, LiteRT int8 {int8_accuracy:.4f}")
    assert abs(int8_accuracy - float_accuracy) <= INT8_MAX_ACCURACY_DROP
    # It is quantized: int8 tensors, a file ~4x smaller, outputs not bit-equal.
    info = served["report"]["info"]
    assert info[served["paths"]["bn_mlp/litert_int8"]]["int8_tensors"] >= 8
    assert info[served["paths"]["bn_mlp/litert"]]["int8_tensors"] == 0
    sizes = {k: os.path.getsize(served["paths"][f"bn_mlp/{k}"]) for k in ("litert", "litert_int8")}
    assert sizes["litert_int8"] < 0.35 * sizes["litert"], sizes
    assert not np.array_equal(int8["probabilities"],
                              _outputs(served, "bn_mlp/litert")["probabilities"])


@pytest.mark.parametrize("name, fmt", [(n, f) for n, fs in FORMATS_OF.items() for f in fs])
def test_inception_variants_match_keras(served, name, fmt):
    for case in ("square", "resized"):
        job_id = f"{name}/{fmt}/{case}"
        out = _outputs(served, job_id)
        expected = served["expected"][job_id]
        np.testing.assert_allclose(out["probabilities"], expected, rtol=INCEPTION_RTOL,
                                   atol=ATOL, err_msg=job_id)
        kth = np.sort(out["probabilities"], axis=1)[:, ::-1][:, :TOP_K]
        np.testing.assert_array_equal(out["scores"], kth)
        np.testing.assert_array_equal(
            np.take_along_axis(out["probabilities"], out["classes"], axis=1), out["scores"])


def test_names_match_the_saved_model_signatures(served):
    info = served["report"]["info"]
    onnx_info = info[served["paths"]["bn_mlp/onnx"]]
    assert onnx_info["inputs"] == [["images", "tensor(float)", [None, 28, 28, 1]]]
    assert onnx_info["outputs"] == {"probabilities": "tensor(float)",
                                    "classes": "tensor(int64)", "scores": "tensor(float)"}
    assert info[served["paths"]["bn_inception/onnx"]]["inputs"] == [
        ["images", "tensor(float)", [None, None, None, 3]]]
    for kind in ("litert", "litert_int8"):
        litert = info[served["paths"][f"bn_mlp/{kind}"]]
        assert litert["signatures"] == {"serving_default": {
            "inputs": ["images"], "outputs": ["classes", "probabilities", "scores"]}}
        assert litert["inputs"] == {"images": ["float32", [-1, 28, 28, 1]]}
        assert litert["outputs"] == {"probabilities": "float32", "classes": "int64",
                                     "scores": "float32"}
    out = _outputs(served, "bn_mlp/onnx")
    assert out["classes"].shape == (ONNX_IMAGES, TOP_K)


def test_folded_onnx_has_no_batch_normalization(served):
    info = served["report"]["info"]
    for key, path in served["paths"].items():
        if key.endswith("/onnx"):
            assert "BatchNormalization" not in info[path]["op_counts"], key
    # The unfolded MLP still scales by each BN's a = γ/√(Var + ε): one Mul
    # more per BN (3) than the folded one, whose kernels hold a.
    folded = info[served["paths"]["bn_mlp/onnx"]]["op_counts"]
    unfolded = info[served["paths"]["bn_mlp/onnx_unfolded"]]["op_counts"]
    assert unfolded["Mul"] >= folded.get("Mul", 0) + 3, (folded, unfolded)
    assert folded["MatMul"] == unfolded["MatMul"] == 4


BAD_SHAPES = {
    "bad/onnx/size": "Got invalid dimensions for input: images",
    "bad/onnx/rank3": "Invalid rank for input: images",
    "bad/onnx/channels": "Got invalid dimensions for input: images",
    "bad/onnx/inception_gray": "Got invalid dimensions for input: images",
    "bad/onnx/inception_rgba": "Got invalid dimensions for input: images",
    "bad/onnx/inception_six": "Got invalid dimensions for input: images",
    "bad/onnx/inception_rank3": "Invalid rank for input: images",
    "bad/litert_strict/size": "only allows mutating unknown dimensions",
    "bad/litert_strict/rank3": "",
    "bad/litert_strict/channels": "only allows mutating unknown dimensions",
}


@pytest.mark.parametrize("job_id", sorted(BAD_SHAPES))
def test_wrong_shapes_are_refused_by_the_runtime(served, job_id):
    result = served["report"]["results"][job_id]
    assert "error" in result, f"{job_id} returned outputs instead of failing"
    assert BAD_SHAPES[job_id] in result["message"], result["message"][:500]


LITERT_784_SHAPES = {"56x14": (1, 56, 14, 1), "14x56": (4, 14, 56, 1), "flat": (2, 784),
                     "rank5": (1, 1, 28, 28, 1), "784x1": (1, 784, 1, 1),
                     "empty": (0, 28, 28, 1)}
BAD_VALUES = {"nan": np.nan, "inf": np.inf, "minus_inf": -np.inf, "negative": -1e6,
              "above_255": 255.5, "tiny_negative": -1e-30}
# The input check's failing op (bn_zoo.export.formats.ImagesCheck).
LITERT_REFUSAL = "gather index out of bounds"
ONNX_REFUSAL = ("images_check_1/images_must_be_a_nonempty_batch_of_finite_pixel_values_in_0_255"
                "' Status Message: indices element out of data bounds, idx=1")


def _refused(served, job_id, message):
    result = served["report"]["results"][job_id]
    assert "error" in result, f"{job_id}: answered instead of failing"
    assert message in result["message"], (job_id, result["message"][:500])


def test_litert_refuses_every_wrong_shape_with_its_input_check(served):
    """The signature runner resizes its input to whatever it is given, so
    the file checks the shape itself (rank, size, channels, a non-empty
    batch), from the run-time shape, which the converter cannot fold away:
    every wrong shape fails at the check's gather, before any other op runs
    (docs/export.md); the Inception family's height and width stay free.
    The strict resize of docs/export.md still passes the good shape."""
    cases = ["size", "rank3", "channels", *LITERT_784_SHAPES,
             *(f"inception_{c}" for c in ("gray", "rgba", "six", "rank3", "rank5", "empty",
                                          "no_height"))]
    for case in cases:
        _refused(served, f"bad/litert/{case}", LITERT_REFUSAL)
        assert "(GATHER) failed to invoke" in served["report"]["results"][
            f"bad/litert/{case}"]["message"]
    _refused(served, "bad/litert_int8/56x14", LITERT_REFUSAL)
    out = _outputs(served, "bad/litert_strict/good")
    np.testing.assert_allclose(out["probabilities"], served["expected"]["bad/litert_strict/good"],
                               rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", ["onnx", "litert", "litert_int8"])
def test_bad_pixel_values_and_empty_batches_are_refused_by_every_file(served, kind):
    """serving_default's value check, carried by both formats: NaN, ±inf,
    values outside [0, 255] (one among good digits is enough; images already
    scaled to [-1, 1] too) and an empty batch fail instead of answering. The
    int8 file checks the float32 bit patterns, which its quantizer leaves
    alone (a quantized comparison would clip -1e6 and NaN into range)."""
    message = ONNX_REFUSAL if kind == "onnx" else LITERT_REFUSAL
    for case in [*BAD_VALUES, "scaled", "empty"]:
        _refused(served, f"values/{kind}/{case}", message)
    for fmt in ("onnx", "litert"):
        _refused(served, f"values/{fmt}/inception_nan",
                 ONNX_REFUSAL if fmt == "onnx" else LITERT_REFUSAL)


@pytest.mark.parametrize("kind", ["onnx", "litert", "litert_int8"])
def test_the_borders_of_the_pixel_range_are_served(served, kind):
    """-0.0 (which the bit-pattern check must tell from the negative values)
    and 255.0 are valid pixels: served, as Keras computes them (int8: the
    same classes as float for nearly all, as its accuracy)."""
    out = _outputs(served, f"borders/{kind}")
    expected = served["expected"][f"borders/{kind}"]
    if kind == "litert_int8":
        assert np.mean(np.argmax(out["probabilities"], 1) == np.argmax(expected, 1)) >= 0.75
    else:
        np.testing.assert_allclose(out["probabilities"], expected, rtol=0, atol=ATOL)


def test_bad_format_options_write_nothing(tmp_path, monkeypatch):
    model = models.create_model("bn_mlp", weights=None)
    base = tmp_path / "m"
    for options, message in [
        (dict(format="tflite"), "Unknown export format 'tflite'; use one of saved_model, onnx"),
        (dict(format="onnx", quantize="int8"), "applies to the LiteRT format only"),
        (dict(quantize="int8"), "applies to the LiteRT format only"),
        (dict(format="litert", quantize="int4"), "Unknown quantization 'int4'"),
        (dict(format="litert", quantize="int8"), "needs calibration_batches"),
        (dict(format="onnx", constant_weights=False), "applies to saved_model only"),
        (dict(format="litert", with_image_bytes=True), "no `image_bytes`"),
    ]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            export_model(model, str(base), "mnist", **options)
    for module, fmt in (("onnxruntime", "onnx"), ("ai_edge_litert", "litert")):
        monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails.
        with pytest.raises(ImportError, match=r"pip install 'bn_zoo\[export\]'"):
            export_model(model, str(base), "mnist", format=fmt)
        monkeypatch.delitem(sys.modules, module)
    assert not base.exists()


def test_imagenet_calibration_batches_are_training_pixels(tmp_path):
    """The Inception family calibrates on the ImageNet pipeline's training
    split, centrally cropped, as pixel values; missing data fails at once."""
    data_dir = str(tmp_path / "data")
    tfrecords.write_synthetic_imagenet(
        data_dir, num_train=16, num_validation=2, num_classes=4,
        image_size=(40, 40), num_train_shards=1, num_validation_shards=1, seed=0)
    from bn_zoo.data import imagenet

    config = imagenet.default_config().to_dict()
    config.update(source="tfrecord", data_dir=data_dir,
                  num_classes=4, image_size=SIZE)
    batches = list(calibration.imagenet_batches(config, steps=2, batch_size=8)())
    assert [b.shape for b in batches] == [(8, SIZE, SIZE, 3)] * 2
    pixels = np.concatenate(batches)
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3 and pixels.max() > 100
    with pytest.raises(tfrecords.DataNotFoundError):
        calibration.imagenet_batches(dict(config, data_dir=str(tmp_path / "none")), 1)
