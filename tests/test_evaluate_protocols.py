"""The crop protocols (1, 10, 144 crops), the ensemble and the background
class, against an independent float64 numpy reference on real JPEG TFRecords.

The reference decodes the same JPEG bytes (tf.io.decode_jpeg), cuts the crops
and resizes them bilinearly in numpy as docs/evaluation.md defines them, and
runs the test models (Flatten + Dense: every pixel has its own weights, so a
crop shifted by one pixel or a missing mirror changes the output) in numpy.
"""

import math
import os
from fractions import Fraction

import keras
import numpy as np
import pytest
import tensorflow as tf

from bn_zoo import evaluation
from bn_zoo.data import DataNotFoundError, tfrecords

S = 16
NUM_CLASSES = 10
# (height, width): landscape, portrait, square, a long side rounding a half up
# (25·18/20 = 22.5 -> 23), odd margins, smaller than the crops.
SIZES = [(23, 37), (41, 19), (20, 20), (20, 25), (30, 17), (12, 9)] * 2
GOOGLENET_SCALES = (256, 288, 320, 352)
CAFFE_BGR_MEANS = np.array([104.0, 117.0, 128.0])


# ---------------------------------------------------------------- reference
def _round(p, q):
    """p/q rounded to the nearest integer, halves up."""
    return math.floor(Fraction(p, q) + Fraction(1, 2))


def _interpolation(n_in, n_out):
    centres = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    low = np.floor(centres).astype(int)
    return low, np.minimum(low + 1, n_in - 1), centres - low


def _resize(x, height, width):
    """Bilinear, half-pixel centres, no antialiasing; float64."""
    low, high, frac = _interpolation(x.shape[0], height)
    x = x[low] * (1 - frac)[:, None, None] + x[high] * frac[:, None, None]
    low, high, frac = _interpolation(x.shape[1], width)
    return x[:, low] * (1 - frac)[None, :, None] + x[:, high] * frac[None, :, None]


def _shorter_side(x, side):
    h, w = x.shape[:2]
    if h <= w:
        return _resize(x, side, _round(w * side, h))
    return _resize(x, _round(h * side, w), side)


def _five(x):
    h, w = x.shape[:2]
    at = [((h - S) // 2, (w - S) // 2), (0, 0), (0, w - S), (h - S, 0), (h - S, w - S)]
    return [x[t:t + S, l:l + S] for t, l in at]


def _mirrored(crops):
    return crops + [c[:, ::-1] for c in crops]


def reference_crops(image, protocol):
    """The crops of a uint8 image as float64 arrays, by the written definitions."""
    x = image.astype(np.float64)
    h, w = x.shape[:2]
    if protocol == 1:  # tf.image.central_crop's window: int((n - 0.875 n) / 2).
        t, l = int((h - h * 0.875) / 2), int((w - w * 0.875) / 2)
        return [_resize(x[t:h - t, l:w - l], S, S)]
    if protocol == 10:
        return _mirrored(_five(_shorter_side(x, _round(S, Fraction(7, 8)))))
    crops = []
    for k in GOOGLENET_SCALES:
        side = _round(S * k, 224)
        y = _shorter_side(x, side)
        h, w = y.shape[:2]
        if w >= h:  # Left, centre, right squares.
            squares = [y[:, l:l + side] for l in (0, (w - side) // 2, w - side)]
        else:  # Top, centre, bottom.
            squares = [y[t:t + side] for t in (0, (h - side) // 2, h - side)]
        for square in squares:
            crops += _five(square) + [_resize(square, S, S)]
    return _mirrored(crops)


def _scale(crops, mode):
    if mode == "inception":
        return crops / 127.5 - 1.0
    return crops[..., ::-1] - CAFFE_BGR_MEANS  # caffe_bn_inception: BGR minus means.


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def reference_probabilities(images, protocol, weights, mode, background=0):
    """Per image: the mean over its crops of the softmax (without the first
    `background` logits) of a Flatten + Dense model."""
    kernel, bias = weights
    out = []
    for image in images:
        x = _scale(np.stack(reference_crops(image, protocol)), mode)
        logits = x.reshape(len(x), -1) @ kernel + bias
        out.append(_softmax(logits[:, background:]).mean(axis=0))
    return np.stack(out)


def top_k(probabilities, labels, k):
    higher = (probabilities > probabilities[np.arange(len(labels)), labels][:, None]).sum(1)
    return float(np.mean(higher < k))


# ---------------------------------------------------------------- fixtures
def _dense_model(classes, stddev, seed, activation="softmax"):
    rng = np.random.default_rng(seed)
    inputs = keras.Input((S, S, 3))
    dense = keras.layers.Dense(classes, activation=activation)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    kernel = rng.normal(0, stddev, (S * S * 3, classes))
    bias = rng.normal(0, 0.5, classes)
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return model, (kernel.astype(np.float32).astype(np.float64),
                   bias.astype(np.float32).astype(np.float64))


@pytest.fixture(scope="module")
def models():
    return {
        "a": _dense_model(NUM_CLASSES, 0.1, seed=1),  # On [-1, 1] inputs.
        "b": _dense_model(NUM_CLASSES, 0.001, seed=2),  # On BGR minus means.
        "slim": _dense_model(NUM_CLASSES + 1, 0.1, seed=3),  # Class 0 = background.
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory, models):
    """Two validation shards of JPEGs of SIZES; labels chosen from model a's
    ranking (rank i % 6 of image i), so top-1 and top-5 are neither 0 nor 1."""
    rng = np.random.default_rng(0)
    jpegs, images = [], []
    for h, w in SIZES:
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        jpeg = tf.io.encode_jpeg(pixels, quality=95).numpy()
        jpegs.append(jpeg)
        images.append(tf.io.decode_jpeg(jpeg, channels=3).numpy())
    ranking = np.argsort(-reference_probabilities(images, 1, models["a"][1], "inception"), 1)
    labels = np.array([ranking[i, i % 6] for i in range(len(images))])
    directory = str(tmp_path_factory.mktemp("imagenet"))
    half = len(jpegs) // 2
    for index, part in enumerate((slice(0, half), slice(half, None))):
        tfrecords.write_records(
            os.path.join(directory, tfrecords.shard_name("validation", index, 2)),
            [tfrecords.make_example(j, y + 1).SerializeToString()  # Stored 1..10.
             for j, y in zip(jpegs[part], labels[part])])
    # cycle_length=1: the shards in order, so results line up with `images`.
    config = dict(source="tfrecord", data_dir=directory, num_classes=NUM_CLASSES,
                  cycle_length=1)
    return config, images, labels


def _check(results, index, expected, labels):
    np.testing.assert_array_equal(results.labels, labels)
    np.testing.assert_allclose(results.probabilities[index], expected, rtol=1e-4, atol=1e-6)
    row = results.members[index]
    assert (row.top1, row.top5) == pytest.approx(
        (top_k(expected, labels, 1), top_k(expected, labels, 5)))


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("protocol, batch_size", [(1, 5), (10, 30), (144, 144)])
def test_protocol_matches_reference(data, models, protocol, batch_size):
    config, images, labels = data
    model, weights = models["a"]
    results = evaluation.evaluate(
        [evaluation.Member("a", model, "inception")], config, protocol=protocol,
        batch_size=batch_size, progress=False, keep_probabilities=True)
    expected = reference_probabilities(images, protocol, weights, "inception")
    _check(results, 0, expected, labels)
    assert results.num_images == len(images) and results.ensemble is None
    assert (results.protocol, results.image_size) == (protocol, S)


def test_crop_image_matches_reference_crops(data):
    # The crops themselves, on a landscape, a portrait and the half-up image.
    _, images, _ = data
    for image in (images[0], images[1], images[3]):
        for protocol in evaluation.PROTOCOLS:
            crops = evaluation.crop_image(image, protocol, S).numpy()
            np.testing.assert_allclose(
                crops, np.stack(reference_crops(image, protocol)), rtol=0, atol=1e-3)


def test_protocol_sizes_follow_the_input_size():
    crops = evaluation.crops
    assert crops.ten_crop_side(224) == 256 and crops.googlenet_sides(224) == (256, 288, 320, 352)
    assert crops.ten_crop_side(299) == 342 and crops.googlenet_sides(299) == (342, 384, 427, 470)
    assert crops.round_ratio(45, 2) == 23  # Halves round up.


def test_ensemble_of_two_preprocessings(data, models):
    config, images, labels = data
    members = [evaluation.Member("a", models["a"][0], "inception"),
               evaluation.Member("b", models["b"][0], "caffe_bn_inception")]
    results = evaluation.evaluate(members, config, protocol=10, batch_size=40,
                                  progress=False, keep_probabilities=True)
    expected = [reference_probabilities(images, 10, models["a"][1], "inception"),
                reference_probabilities(images, 10, models["b"][1], "caffe_bn_inception")]
    for index in range(2):
        _check(results, index, expected[index], labels)
    mean = (expected[0] + expected[1]) / 2
    np.testing.assert_allclose(results.ensemble_probabilities, mean, rtol=1e-4, atol=1e-6)
    assert (results.ensemble.top1, results.ensemble.top5) == pytest.approx(
        (top_k(mean, labels, 1), top_k(mean, labels, 5)))
    assert [row.name for row in results.rows] == ["a", "b", "ensemble"]
    table = results.table()
    assert "ensemble" in table and f"{results.ensemble.top5:.2%}" in table


def test_background_class_is_dropped_for_probabilities_and_logits(data, models):
    config, images, labels = data
    model, weights = models["slim"]
    logits = _dense_model(NUM_CLASSES + 1, 0.1, seed=3, activation=None)[0]  # Same weights.
    members = [evaluation.Member("slim", model, "inception"),
               evaluation.Member("slim logits", logits, "inception", outputs="logits")]
    results = evaluation.evaluate(members, config, protocol=1, progress=False,
                                  keep_probabilities=True)
    expected = reference_probabilities(images, 1, weights, "inception", background=1)
    _check(results, 0, expected, labels)
    _check(results, 1, expected, labels)


def test_outputs_and_sizes_that_do_not_fit_are_refused(data, models):
    config, _, _ = data
    with pytest.raises(ValueError, match="outputs 12 classes but the data has 10"):
        evaluation.evaluate([evaluation.Member("m", _dense_model(12, 0.1, 0)[0], "inception")],
                            config, progress=False)
    logits = _dense_model(NUM_CLASSES, 0.1, 0, activation=None)[0]
    with pytest.raises(ValueError, match="'m' does not output probabilities.*"
                       "classifier_activation='softmax'.*outputs='logits'"):
        evaluation.evaluate([evaluation.Member("m", logits, "inception")], config,
                            progress=False)
    inputs = keras.Input((S + 1, S + 1, 3))
    other = keras.Model(inputs, keras.layers.Dense(NUM_CLASSES)(
        keras.layers.GlobalAveragePooling2D()(inputs)))
    with pytest.raises(ValueError, match="inputs of different sizes \\(a: 16, o: 17\\)"):
        evaluation.evaluate([evaluation.Member("a", models["a"][0], "inception"),
                             evaluation.Member("o", other, "inception")], config)
    with pytest.raises(ValueError, match="protocol must be one of \\(1, 10, 144\\)"):
        evaluation.evaluate([evaluation.Member("a", models["a"][0], "inception")], config,
                            protocol=5)
    with pytest.raises(ValueError, match="Unknown preprocessing 'rgb'"):
        evaluation.Member("a", models["a"][0], "rgb")


def test_missing_data_is_reported_with_the_path(tmp_path, models):
    missing = str(tmp_path / "nowhere")
    member = evaluation.Member("a", models["a"][0], "inception")
    with pytest.raises(DataNotFoundError, match=f"{missing}.*does not exist.*Point `data_dir`"):
        evaluation.evaluate([member], dict(source="tfrecord", data_dir=missing,
                                           num_classes=NUM_CLASSES))


def test_tfds_source_matches_reference():
    """The tfds branch on `tfds.testing.mock_data` (random imagenet2012
    JPEGs of a few pixels, labels 0..999, offline)."""
    import tensorflow_datasets as tfds

    model, weights = _dense_model(1000, 0.1, seed=4)
    with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
        stored = tfds.load("imagenet2012", split="validation",
                           decoders={"image": tfds.decode.SkipDecoding()})
        images, labels = zip(*[(tf.io.decode_jpeg(e["image"], channels=3).numpy(),
                                int(e["label"])) for e in stored])
        results = evaluation.evaluate(
            [evaluation.Member("a", model, "inception")], {"source": "tfds"}, protocol=10,
            progress=False, keep_probabilities=True)
    expected = reference_probabilities(images, 10, weights, "inception")
    _check(results, 0, expected, np.array(labels))
    assert results.data == "imagenet2012 validation"
