"""`config.data.name = "image_folder"`: a folder of real JPEG, PNG, BMP and GIF
files (crops of scikit-image's photos, saved with PIL), one subfolder per
class.

Checked against PIL's decoding (JPEG: TensorFlow's decoder on the single
file) and a float64 numpy bilinear resize, never against the pipeline: the
evaluation images in both crop modes and with the model's scaling; the
training flip (each training image is its file's evaluation crop or that
mirrored). The layout: sorted class names, nested folders, hidden and
top-level files skipped. The validation split: round(f·n) per class, chosen
by the SHA-256 rule of the docs, the same in every run and moved by at most
a file or two when a file is added. Every refusal is one `DataError` naming
the folder or file, before any batch; a file that breaks during the run
stops the pipeline with a `DataError` naming it. Last, the trainer on a
folder: the source gets the model's input from the config; a bad folder is
one `ERROR (DataError)` line and writes nothing; a file that breaks after
the preflight is one `ERROR (DataError)` line naming it.
"""

import hashlib
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import photo_data
import tiny_convnet
from bn_zoo.data import DataError, DataNotFoundError
from bn_zoo.data.errors import named_data_errors
from bn_zoo.data.image_folder import ImageFolderInput
from bn_zoo.data.sources import ModelInput

SIZE = 20


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("photos"))
    photo_data.write_folder(root, per_class=6)
    # Skipped: hidden files and folders, files directly in the folder.
    open(os.path.join(root, "LICENSE.txt"), "w").write("CC0")
    open(os.path.join(root, "coffee", ".DS_Store"), "wb").write(b"\0\1")
    open(os.path.join(root, "coffee", "._coffee_00.jpg"), "wb").write(b"\0\5\26\7")
    os.makedirs(os.path.join(root, "chelsea", ".thumbnails"))
    open(os.path.join(root, "chelsea", ".thumbnails", "x.txt"), "w").write("-")
    # An image in a nested folder belongs to its class.
    rng = np.random.default_rng(5)
    photo_data.save(photo_data.crop("chelsea", rng, (30, 26)),
                    os.path.join(root, "chelsea", "more", "extra.png"))
    return root


@pytest.fixture(scope="module")
def validation(tmp_path_factory):
    """A validation folder with one file of each format, in two classes."""
    root = str(tmp_path_factory.mktemp("validation"))
    rng = np.random.default_rng(11)
    for i, extension in enumerate(photo_data.FORMATS):
        name = ("astronaut", "coffee")[i % 2]
        photo_data.save(photo_data.crop(name, rng, (41 + i, 27 + 3 * i)),
                        os.path.join(root, name, f"v{i}.{extension.upper()}"))
    return root


def _data(directory, **fields):
    data = ImageFolderInput.default_config()
    data.directory = directory
    data.update(fields)
    ImageFolderInput.check_config(data)
    return data


def _source(directory, preprocess=None, model_input=None, **fields):
    return ImageFolderInput(_data(directory, **fields), preprocess,
                            model_input or ModelInput((SIZE, SIZE, 3)))


def test_classes_and_files(folder):
    source = _source(folder)
    assert source.class_names == ["astronaut", "chelsea", "coffee"]
    assert source.num_classes == 3
    paths = source.train_files[0] + source.eval_files[0]
    assert len(paths) == 19 and len(set(paths)) == 19
    assert os.path.join(folder, "chelsea", "more", "extra.png") in paths
    assert not any(os.path.basename(p).startswith(".") or "/." in p for p in paths)
    for path, label in zip(paths, np.concatenate([source.train_files[1],
                                                  source.eval_files[1]])):
        assert os.path.relpath(path, folder).split(os.sep)[0] == source.class_names[label]


@pytest.mark.parametrize("crop_mode", ["central_fraction", "shorter_side"])
def test_evaluation_images_match_pil_and_numpy(folder, validation, crop_mode):
    model_input = ModelInput((SIZE, SIZE, 3), crop_fraction=0.875, crop_mode=crop_mode)
    source = _source(folder, lambda x: x / 127.5 - 1, model_input,
                     validation_directory=validation)
    assert source.num_eval_examples == 4
    images, labels, weights = next(iter(source.eval_dataset(8)))
    np.testing.assert_array_equal(weights, [1, 1, 1, 1, 0, 0, 0, 0])
    for i, (path, label) in enumerate(zip(*source.eval_files)):
        assert source.class_names[labels[i]] == os.path.basename(os.path.dirname(path))
        pixels = photo_data.reference_image(path)
        if crop_mode == "central_fraction":
            expected = photo_data.central_crop_resize(pixels, SIZE, SIZE, 0.875)
        else:
            expected = photo_data.shorter_side_resize(pixels, SIZE, 0.875)
        np.testing.assert_allclose((images[i].numpy() + 1) * 127.5, expected, atol=1e-3,
                                   err_msg=path)


def test_grey_models_get_one_channel(folder):
    source = _source(folder, model_input=ModelInput((12, 14, 1)))
    images, labels = next(iter(source.train_dataset(4, seed=0)))
    assert images.shape == (4, 12, 14, 1) and labels.dtype == tf.int32


def test_flip_mirrors_the_evaluation_crop(folder):
    """With random_flip alone, every training image is the evaluation crop
    of a training file of its class, or that crop mirrored; both occur."""
    source = _source(folder, random_flip=True)
    references = {}
    for path, label in zip(*source.train_files):
        crop = photo_data.central_crop_resize(photo_data.reference_image(path), SIZE, SIZE)
        references.setdefault(label, []).append(crop)
    flipped = kept = 0
    for images, labels in source.train_dataset(5, seed=3).take(6):
        for image, label in zip(images.numpy(), labels.numpy()):
            tolerance = 1e-3
            same = [np.abs(image - r).max() <= tolerance for r in references[label]]
            mirror = [np.abs(image - r[:, ::-1]).max() <= tolerance for r in references[label]]
            assert any(same) or any(mirror)
            kept += any(same)
            flipped += any(mirror) and not any(same)
    assert kept and flipped


def test_random_crop_differs_from_the_evaluation_crop(folder):
    plain = _source(folder)
    cropped = _source(folder, random_crop=True, crop_area_range=(0.3, 0.6))
    a, _ = next(iter(plain.train_dataset(8, seed=1)))
    b, _ = next(iter(cropped.train_dataset(8, seed=1)))
    assert a.shape == b.shape == (8, SIZE, SIZE, 3)
    assert all(np.abs(x - y).max() > 10 for x, y in zip(a.numpy(), b.numpy()))


def test_validation_split_rule(folder, tmp_path):
    source = _source(folder, validation_split=0.34, validation_seed=4)
    every = (source.train_files[0] + source.eval_files[0],
             np.concatenate([source.train_files[1], source.eval_files[1]]))
    for label, name in enumerate(source.class_names):
        class_dir = os.path.join(folder, name)
        names = sorted(os.path.relpath(p, class_dir).replace(os.sep, "/")
                       for p, y in zip(*every) if y == label)
        held = sorted(os.path.relpath(p, class_dir).replace(os.sep, "/")
                      for p, y in zip(*source.eval_files) if y == label)
        ranked = sorted(names, key=lambda n: hashlib.sha256(f"4:{n}".encode()).hexdigest())
        assert held == sorted(ranked[:int(np.floor(0.34 * len(names) + 0.5))])
    again = _source(folder, validation_split=0.34, validation_seed=4)
    assert again.eval_files[0] == source.eval_files[0]
    other = _source(folder, validation_split=0.34, validation_seed=5)
    assert other.eval_files[0] != source.eval_files[0]
    # A file added moves at most itself (and one file at the split's edge).
    copy = str(tmp_path / "copy")
    shutil.copytree(folder, copy)
    shutil.copy(os.path.join(copy, "coffee", "coffee_00.jpg"),
                os.path.join(copy, "coffee", "new.jpg"))
    grown = _source(copy, validation_split=0.34, validation_seed=4)
    before = {os.path.relpath(p, folder) for p in source.eval_files[0]}
    after = {os.path.relpath(p, copy) for p in grown.eval_files[0]}
    assert len(before ^ after) <= 2


def _broken(tmp_path, folder, change):
    root = str(tmp_path / "broken")
    shutil.copytree(folder, root)
    return root, change(root)


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(data)
    return path


def _truncated_jpeg(root):
    path = os.path.join(root, "astronaut", "astronaut_00.jpg")
    data = open(path, "rb").read()
    return _write(path, data[:len(data) // 3])


BROKEN = {
    "missing": (lambda root: os.path.join(root, "nowhere"), DataNotFoundError,
                "does not exist or is not a folder"),
    "empty": (lambda root: [shutil.rmtree(os.path.join(root, c))
                            for c in ("astronaut", "chelsea", "coffee")] and root,
              DataError, "holds none of the class subfolders"),
    "one_class": (lambda root: [shutil.rmtree(os.path.join(root, c))
                                for c in ("astronaut", "chelsea")] and root,
                  DataError, "holds only 'coffee' of the class subfolders"),
    "class_without_images": (
        lambda root: (os.makedirs(os.path.join(root, "dog")),
                      _write(os.path.join(root, "dog", ".keep"), b""),
                      os.path.join(root, "dog"))[-1],
        DataError, "holds no images"),
    "text_file": (lambda root: _write(os.path.join(root, "coffee", "notes.txt"), b"hi"),
                  DataError, "is not an image file"),
    "not_an_image": (lambda root: _write(os.path.join(root, "coffee", "fake.jpg"),
                                         b"<html>not a photo</html>"),
                     DataError, "is not a JPEG, PNG, GIF or BMP image"),
    "empty_file": (lambda root: _write(os.path.join(root, "chelsea", "zero.png"), b""),
                   DataError, "is empty"),
    "truncated_decode_check": (_truncated_jpeg, DataError,
                               "cannot be read or decoded as an image"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_refusals_name_the_folder_or_file(folder, tmp_path, case):
    change, kind, message = BROKEN[case]
    root, named = _broken(tmp_path, folder, change)
    directory = named if case == "missing" else root
    fields = {"check_images": "decode"} if case == "truncated_decode_check" else {}
    with pytest.raises(kind, match=message) as raised:
        _source(directory, **fields)
    assert named in str(raised.value)
    assert "\n" not in str(raised.value)


def test_split_and_validation_folder_refusals(folder, validation, tmp_path):
    with pytest.raises(DataError, match="holds out all its 1 image"):
        root, _ = _broken(tmp_path, folder, lambda r: [
            os.remove(p) for p in sorted(
                os.path.join(r, "coffee", n) for n in os.listdir(os.path.join(r, "coffee"))
                if not n.startswith("."))[1:]])
        _source(root, validation_split=0.5)
    extra = str(tmp_path / "validation")
    shutil.copytree(validation, extra)
    os.makedirs(os.path.join(extra, "zebra"))
    with pytest.raises(DataError, match=rf"{extra}.*'zebra'.*does not have"):
        _source(folder, validation_directory=extra)
    source = _source(folder)
    with pytest.raises(DataError, match=rf"{folder}.*has 16 training images.*fewer than "
                                        "one global batch of 17"):
        source.train_dataset_fn(17, 0, 0)
    with pytest.raises(ValueError, match="input must be images"):
        ModelInput((784,))
    with pytest.raises(ValueError, match="needs the model's input"):
        ImageFolderInput(_data(folder), None)


def test_a_file_broken_during_the_run_is_named(folder, validation, tmp_path):
    root, path = _broken(tmp_path, folder, lambda r: os.path.join(r, "astronaut",
                                                                  "astronaut_00.jpg"))
    source = _source(root, validation_directory=validation)  # Checked: still whole.
    _truncated_jpeg(root)
    dataset = source.train_dataset(19, seed=0)  # Every training file, first batch.
    with pytest.raises(tf.errors.InvalidArgumentError, match=path):
        next(iter(dataset))
    with pytest.raises(DataError, match=rf"^{path}: cannot be read or decoded") as raised:
        with named_data_errors():
            next(iter(dataset))
    assert "\n" not in str(raised.value) and "node" not in str(raised.value)


@pytest.mark.parametrize("fields, message", [
    ({"directory": None}, "config.data.directory is not set"),
    ({"validation_split": 1.0}, "validation_split must be a fraction in"),
    ({"check_images": "all"}, "check_images must be one of"),
    ({"random_flip": 1}, "random_flip must be True or False"),
    ({"crop_area_range": (0.0, 1.0)}, "crop_area_range must be"),
])
def test_config_checks(fields, message):
    data = ImageFolderInput.default_config().to_dict()  # As resolve() passes it.
    data["directory"] = "/somewhere"
    data.update(fields)
    with pytest.raises(ValueError, match=message):
        ImageFolderInput.check_config(data)


# ------------------------------------------------------------ through the trainer
def _trainer_config(directory, workdir_steps=4):
    from bn_zoo.training import inputs

    config = tiny_convnet.sgd_config(inputs.default_config("image_folder"), learning_rate=0.05,
                                     decay_steps=100, input_shape=(SIZE, SIZE, 3))
    config.data.directory = directory
    config.global_batch_size = 5
    config.eval_batch_size = 4
    config.num_train_steps = workdir_steps
    config.steps_per_loop = config.log_every_steps = config.eval_every_steps = 2
    config.checkpoint_every_steps = 2
    config.population_batches = 0
    return config


def test_trainer_on_a_folder(folder):
    from bn_zoo import training
    from bn_zoo.training import inputs

    config = training.config.resolve(_trainer_config(folder))
    source = inputs.create(config.data, None, model=config.model)
    assert source.class_names == ["astronaut", "chelsea", "coffee"]
    assert source.model_input.image_shape == (SIZE, SIZE, 3)


def test_trainer_names_bad_data_in_one_line(folder, tmp_path, monkeypatch, capsys):
    import sys

    from bn_zoo import training
    from bn_zoo.training import cli

    monkeypatch.setattr(sys, "argv", ["trainers/train.py"])
    empty = tmp_path / "empty"
    empty.mkdir()
    workdir = str(tmp_path / "run")
    with pytest.raises(SystemExit):
        cli.run(lambda: training.train(_trainer_config(str(empty)), workdir))
    err = capsys.readouterr().err
    assert err.startswith("ERROR (DataError): ") and str(empty) in err, err[-2000:]
    assert not os.path.exists(workdir) or not os.listdir(workdir)

    # A file that breaks after the preflight check: one line naming it.
    root, _ = _broken(tmp_path, folder, lambda r: None)
    path = os.path.join(root, "coffee", "coffee_01.png")
    original = open(path, "rb").read()
    config = _trainer_config(root)
    data_init = ImageFolderInput.__init__

    def init_then_break(self, *args, **kwargs):
        data_init(self, *args, **kwargs)
        _write(path, original[:40])  # After the preflight, before the first batch.

    monkeypatch.setattr(ImageFolderInput, "__init__", init_then_break)
    with pytest.raises(SystemExit):
        cli.run(lambda: training.train(config, str(tmp_path / "run2")))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"ERROR (DataError): {path}: cannot be read or decoded"), \
        err[-2000:]
