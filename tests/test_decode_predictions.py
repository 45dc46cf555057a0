"""`bn_zoo.decode_predictions` and the label sets behind it, against
independent references: the ImageNet classes of TensorFlow Datasets'
`imagenet2012` (its labels.txt, installed with tensorflow-datasets), index ->
WordNet ID -> name pairs stated in the literature, numpy's argsort, and
TF-slim's label shift (its class i + 1 is ImageNet class i)."""

import importlib.resources
import socket

import keras
import numpy as np
import pytest
import tensorflow as tf

import bn_zoo
from bn_zoo.models import labels

# Index, WordNet ID and keras.applications-style name of well-known classes
# (keras.applications' imagenet_class_index.json, Caffe's synset_words.txt).
KNOWN = [(0, "n01440764", "tench"), (1, "n01443537", "goldfish"),
         (2, "n01484850", "great_white_shark"), (281, "n02123045", "tabby"),
         (282, "n02123159", "tiger_cat"), (285, "n02124075", "Egyptian_cat"),
         (409, "n02708093", "analog_clock"), (999, "n15075141", "toilet_tissue")]


def _tfds_imagenet_synsets():
    files = importlib.resources.files("tensorflow_datasets")
    for where in ("datasets/imagenet2012/labels.txt",
                  "image_classification/imagenet2012_labels.txt"):
        path = files.joinpath(where)
        if path.is_file():
            return tuple(path.read_text().split())
    pytest.skip("tensorflow_datasets ships no imagenet2012 labels.txt")


def _probabilities(rows, columns, seed):
    return np.random.default_rng(seed).dirichlet(np.ones(columns), size=rows)


def _reference_top(scores, top, ids, names):
    order = np.argsort(scores, axis=1)[:, ::-1][:, :top]
    return [[(ids[i], names[i], float(row[i])) for i in o] for row, o in zip(scores, order)]


# ------------------------------------------------------------- label sets
def test_imagenet_classes_are_tfds_sorted_synsets_with_known_names():
    ids = labels.class_ids("imagenet1000")
    names = labels.class_names("imagenet1000")
    assert ids == _tfds_imagenet_synsets()
    assert list(ids) == sorted(ids) and len(set(ids)) == 1000 == len(names)
    for index, wnid, name in KNOWN:
        assert (ids[index], names[index]) == (wnid, name)
    assert all(name and " " not in name and "\t" not in name for name in names)
    # Two WordNet senses share a first lemma: ids tell them apart.
    assert names.count("crane") == 2 and names.count("maillot") == 2


def test_slim_label_set_is_background_then_the_1000_shifted_by_one():
    full = labels.class_ids("imagenet1001_background")
    assert len(full) == 1001 and full[0] == labels.BACKGROUND
    assert full[1:] == labels.class_ids("imagenet1000")
    for index, wnid, _ in KNOWN:
        assert full[index + 1] == wnid
    assert labels.class_names("imagenet1001_background", 1000) == labels.class_names(
        "imagenet1000")
    with pytest.raises(ValueError, match=r"1001 or 1000 outputs. Received: num_outputs=999"):
        labels.class_names("imagenet1001_background", 999)


def test_class_names_are_read_offline_from_the_package(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decode_predictions must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(keras.utils, "get_file", refuse)
    labels._imagenet.cache_clear()
    (row,) = bn_zoo.decode_predictions(np.eye(1000)[[999]], top=1, weights="imagenet_caffe")
    assert row == [("n15075141", "toilet_tissue", 1.0)]
    packaged = importlib.resources.files("bn_zoo.models").joinpath(labels.IMAGENET_FILE)
    assert packaged.is_file() and "Provenance" in packaged.read_text("utf-8")


# ------------------------------------------------------ decode_predictions
@pytest.mark.parametrize("top", [1, 5, 17])
def test_caffe_release_order_matches_numpy_argsort(top):
    probabilities = _probabilities(6, 1000, seed=top)
    expected = _reference_top(probabilities, top, labels.class_ids("imagenet1000"),
                              labels.class_names("imagenet1000"))
    for kwargs in ({"weights": "imagenet_caffe"}, {"model": "bn_inception"}, {}):
        assert bn_zoo.decode_predictions(probabilities, top=top, **kwargs) == expected
    # keras.applications' answer: a list per sample of (id, name, score).
    first = expected[0][0]
    assert isinstance(first, tuple) and isinstance(first[2], float)


def test_slim_1001_outputs_skip_background_and_shift_by_one():
    probabilities = _probabilities(5, 1001, seed=11)
    probabilities[:, 0] = probabilities.max() + 1.0  # The best score: still never returned.
    expected = _reference_top(probabilities[:, 1:], 5, labels.class_ids("imagenet1000"),
                              labels.class_names("imagenet1000"))
    got = bn_zoo.decode_predictions(probabilities, top=5, weights="imagenet")
    assert got == expected
    assert all(labels.BACKGROUND not in (i, n) for row in got for i, n, _ in row)
    # Scores are the model's own, not renormalized over the 1000.
    assert got[0][0][2] == probabilities[0, 1:].max()
    # The same weights built with classes=1000 have dropped the column.
    assert bn_zoo.decode_predictions(probabilities[:, 1:], top=5, weights="imagenet") == expected
    assert bn_zoo.decode_predictions(probabilities, top=5) == expected  # ImageNet default
    # Column j + 1 of slim is class j: a one-hot at column 1 is the tench.
    (row,) = bn_zoo.decode_predictions(np.eye(1001)[[1]], top=1, weights="imagenet",
                                       model="bn_inception")
    assert row == [("n01440764", "tench", 1.0)]


def test_mnist_weights_decode_to_digits_and_tensors_and_lists_work():
    logits = np.random.default_rng(3).normal(size=(4, 10)).astype("float32")
    digits = [str(d) for d in range(10)]
    expected = _reference_top(logits, 3, digits, digits)
    for kwargs in ({"weights": "mnist"}, {"model": "bn_mlp"}, {"model": "mlp",
                                                                "weights": "mnist"}):
        assert bn_zoo.decode_predictions(logits, top=3, **kwargs) == expected
    assert bn_zoo.decode_predictions(tf.constant(logits), top=3, weights="mnist") == expected
    assert bn_zoo.decode_predictions(logits.tolist(), top=3, weights="mnist") == expected
    # top beyond the classes: all of them.
    assert len(bn_zoo.decode_predictions(logits, top=50, weights="mnist")[0]) == 10


def test_explicit_class_names_and_ties():
    names = ["cat", "dog", "fox"]
    got = bn_zoo.decode_predictions(np.array([[0.2, 0.5, 0.3], [0.4, 0.2, 0.4]]), top=3,
                                    class_names=names)
    assert got == [[("dog", "dog", 0.5), ("fox", "fox", 0.3), ("cat", "cat", 0.2)],
                   [("cat", "cat", 0.4), ("fox", "fox", 0.4), ("dog", "dog", 0.2)]]
    labels.register_label_set("pets_test", names, description="test pets")
    assert labels.class_names("pets_test") == tuple(names)
    with pytest.raises(ValueError, match="zoo's own"):
        labels.register_label_set("imagenet1000", names)


@pytest.mark.parametrize("preds, kwargs, match", [
    (np.ones(1000), {}, r"2D array.*Received array with shape: \(1000,\)"),
    (np.ones((2, 3, 1000)), {}, r"Received array with shape: \(2, 3, 1000\)"),
    (np.ones((2, 10)), {}, r"label set 'imagenet1001_background' has 1001 or 1000 "
     r"columns, but the predictions have 10.*Received: preds with 10 columns"),
    (np.ones((2, 1001)), {"weights": "imagenet_caffe"}, r"has 1000 columns.*have 1001"),
    (np.ones((2, 1000)), {"weights": "mnist"}, r"'mnist10' has 10 columns"),
    (np.ones((2, 4)), {"class_names": ["a", "b"]}, r"2 names for predictions with 4 "
     r"classes.*Received: 2 names, preds with 4 columns"),
    (np.ones((2, 2)), {"class_names": ["a", "b"], "weights": "mnist"}, "Pass either"),
    (np.ones((2, 10)), {"top": 0, "weights": "mnist"}, r"Received: top=0"),
    (np.ones((2, 10)), {"weights": "imagnet"}, r"No model registers weights 'imagnet'"),
    (np.ones((2, 10)), {"weights": "/tmp/x.weights.h5"}, r"a file needs `model`"),
    (np.ones((2, 10)), {"model": "resnet"}, r"Unknown model 'resnet'"),
])
def test_wrong_inputs_are_refused_with_what_was_received(preds, kwargs, match):
    with pytest.raises(ValueError, match=match):
        bn_zoo.decode_predictions(preds, **kwargs)


def test_class_names_must_be_strings():
    with pytest.raises(TypeError, match=r"must all be strings. Received: 3 \(int\)"):
        bn_zoo.decode_predictions(np.ones((1, 2)), class_names=["a", 3])
    with pytest.raises(TypeError, match="sequence of strings"):
        bn_zoo.decode_predictions(np.ones((1, 2)), class_names="ab")
