"""TF-slim's inception_v2 release -> bn_inception(variant="slim"), verified
against tf_slim's own network (tests/release_references.py): a random
checkpoint saved in the release's format, converted (by the command line, and
through the registered weights from a file:// address), and every end point
and the logits compared on the same random images."""

import ast
import dataclasses
import os
import tarfile

import keras
import numpy as np
import pytest

import bn_zoo
import commands
from bn_zoo.models import catalogue, hub, inception_variants, releases
from release_references import assert_close, slim_release

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

# slim's network takes any size from 32 up (its final average pool shrinks to
# the map); 96 keeps the test fast, and every stride-2 stage still halves an
# even side except the last (6 -> 3).
SIZE = 96


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(archive, images in [-1, 1], reference outputs) of a random release."""
    images = np.random.default_rng(7).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    archive, reference = slim_release(str(tmp_path_factory.mktemp("slim")), images, seed=3)
    return archive, images, reference


def _run(model, images):
    # One eager call: `predict` would trace a function for a single batch.
    return keras.tree.map_structure(np.asarray, model(images, training=False))


def _with_end_points(model):
    points = inception_variants.end_points("slim")
    outputs = {n: model.get_layer(layer).output for n, layer in points.items()}
    outputs["Logits"] = model.output
    return keras.Model(model.input, outputs)


def _printed_call(stdout):
    """(args, kwargs) of the `bn_zoo.create_model(...)` call the command prints."""
    line = next(line for line in stdout.splitlines() if "create_model(" in line)
    call = ast.parse(line[line.index("bn_zoo.create_model("):]).body[0].value
    return ([ast.literal_eval(a) for a in call.args],
            {k.arg: ast.literal_eval(k.value) for k in call.keywords})


def test_cli_writes_weights_whose_end_points_and_logits_match_tf_slim(release, tmp_path):
    """The real command line, with --classes=1001 (slim's background class
    kept): its output, loaded with the arguments it prints, gives every slim
    end point and the logits of tf_slim's network. classes=1000, which drops
    class 0, is checked through the registered weights below."""
    archive, images, reference = release
    output = tmp_path / "slim.weights.h5"
    done = commands.run("trainers.convert", ["--source=slim", f"--input={archive}",
                                             f"--output={output}", "--classes=1001"],
                        timeout=600, tf_log_level=commands.INHERIT)
    assert done.returncode == 0, done.stderr
    args, kwargs = _printed_call(done.stdout)
    assert args == ["bn_inception"]
    assert kwargs == dict(include_top=True, classes=1001, variant="slim", weights=str(output))
    model = bn_zoo.create_model(*args, **kwargs, classifier_activation=None,
                                input_shape=(SIZE, SIZE, 3))
    ours = _run(_with_end_points(model), images)
    assert set(ours) == set(reference)
    for name, value in reference.items():
        assert_close(ours[name], value, name)
    from trainers.convert import convert as convert_cli

    before = output.read_bytes()
    with pytest.raises(FileExistsError):
        convert_cli("slim", archive, str(output))
    assert output.read_bytes() == before


def _resave_as_v2(v1_prefix, directory):
    """The same variables as a V2 checkpoint (`.index` + `.data-*`)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(v1_prefix)
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(reader.get_tensor(name), name=name)
                     for name in reader.get_variable_to_shape_map()]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.variables_initializer(variables))
            saver = tf.compat.v1.train.Saver(variables, write_version=tf.compat.v1.train.SaverDef.V2)
            return saver.save(session, os.path.join(directory, "inception_v2.ckpt"),
                              write_meta_graph=False)


def test_v2_checkpoint_prefix_backbone_only_and_pyramid(tmp_path, release):
    """A V2 checkpoint prefix converts without the classifier; the pyramid
    features are slim's Mixed_3c, Mixed_4e and Mixed_5c. (Pooling on the
    backbone: tests/test_models_inception.py::test_include_top_false_with_each_pooling.)"""
    archive, images, reference = release
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "v1")
    prefix = _resave_as_v2(str(tmp_path / "v1" / "inception_v2.ckpt"), str(tmp_path))
    assert os.path.exists(prefix + ".index")
    model = releases.from_slim(prefix, include_top=False, features="pyramid",
                              input_shape=(None, None, 3))
    assert "predictions" not in {layer.name for layer in model.layers}
    ours = _run(model, images)
    assert list(ours) == ["Mixed_3c", "Mixed_4e", "Mixed_5c"]
    for name, value in ours.items():
        assert_close(value, reference[name], name)
    # An early end point: the whole network is converted, then cut.
    early = releases.from_slim(prefix, include_top=False, features=["Mixed_3b"],
                               input_shape=(None, None, 3))
    assert_close(_run(early, images)["Mixed_3b"], reference["Mixed_3b"], "Mixed_3b")


@pytest.fixture
def registered(release, tmp_path, monkeypatch):
    """The registered "imagenet" entry pointed at the random release."""
    archive = release[0]
    monkeypatch.setattr(hub, "CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(catalogue, "_MODELS", dict(catalogue._MODELS))  # undone after the test
    entry = dataclasses.replace(catalogue.weights_of("bn_inception")["imagenet"],
                                origin=f"file://{archive}")
    catalogue.register_weights("bn_inception", "imagenet", entry)
    return entry, tmp_path / "cache"


def test_registered_imagenet_weights_fetch_convert_once_and_cache(
        registered, release, monkeypatch):
    _, images, reference = release
    entry, cache = registered
    model = bn_zoo.create_model("bn_inception", weights="imagenet", input_shape=(SIZE, SIZE, 3))
    # classes=1000 drops slim's background class 0.
    expected = keras.ops.softmax(reference["Logits"][:, 1:]).numpy()
    assert_close(_run(model, images), expected, "probabilities")
    assert (cache / "models/bn_zoo/bn_inception_imagenet_1000.weights.h5").is_file()
    # Later models use the cache: the release is no longer needed. This is
    # what create_model(weights="imagenet") calls after building, with
    # classes=None for include_top=False.
    release_file = cache / "models/bn_zoo/releases/inception_v2_2016_08_28.tar.gz"
    os.remove(release_file)
    catalogue.register_weights("bn_inception", "imagenet",
                               dataclasses.replace(entry, origin="file:///nonexistent.tar.gz"))
    converted = cache / "models/bn_zoo/bn_inception_imagenet_1000.weights.h5"
    stamp = converted.stat().st_mtime_ns
    for classes in (1000, None):
        assert hub.fetch_converted("bn_inception", "imagenet", classes) == str(converted)
    assert converted.stat().st_mtime_ns == stamp and not release_file.exists()
    assert catalogue.preprocessing_of("bn_inception", "imagenet") == "inception"


@pytest.mark.parametrize("damage", ["truncated", "no_checkpoint"])
def test_a_bad_download_is_refused_and_leaves_no_cache_entry(
        damage, registered, tmp_path, monkeypatch, release):
    entry, cache = registered
    bad = tmp_path / "inception_v2_2016_08_28.tar.gz"
    if damage == "truncated":
        data = open(release[0], "rb").read()
        bad.write_bytes(data[: len(data) // 2])
    else:
        (tmp_path / "README").write_text("no checkpoint here")
        with tarfile.open(bad, "w:gz") as tar:
            tar.add(tmp_path / "README", arcname="README")
    catalogue.register_weights("bn_inception", "imagenet",
                               dataclasses.replace(entry, origin=f"file://{bad}"))
    message = "truncated" if damage == "truncated" else "not the TF-slim inception_v2 release"
    # What create_model(weights="imagenet") calls after building the network
    # (test_registered_imagenet_weights_fetch_convert_once_and_cache goes
    # through create_model); the refusal is this function's.
    with pytest.raises(releases.ConversionError, match=message):
        hub.fetch_converted("bn_inception", "imagenet", 1000)
    left = [p for p in cache.rglob("*") if p.is_file()]
    assert left == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(stem="conv"), "stem='separable'"),
        (dict(variant="caffe"), "variant='slim'"),
        (dict(depth_multiplier=0.5), "depth_multiplier=1.0"),
        (dict(lrn=True), "lrn=False"),
        (dict(classes=10), "classes` must be 1000 or 1001"),
        (dict(batch_norm_kwargs={"scale": True}), "scale=False"),
    ],
)
def test_arguments_that_conflict_with_the_weights_are_refused(kwargs, match):
    # Refused before anything is fetched (no registered file is reachable here).
    with pytest.raises(ValueError, match=match):
        bn_zoo.create_model("bn_inception", weights="imagenet", **kwargs)


def test_wrong_class_count_and_wrong_file_are_refused(release, tmp_path):
    with pytest.raises(ValueError, match="1000, 1001"):
        releases.from_slim(release[0], classes=10)
    bogus = tmp_path / "inception_v2.ckpt"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(releases.ConversionError, match="cannot be read"):
        releases.from_slim(str(bogus))
