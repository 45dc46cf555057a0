"""`python -m trainers.evaluate` end to end on real JPEG TFRecords, with a
registered model from a `.weights.h5` file and a trainer workdir as an
ensemble; how members are named, paired and refused."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

import bn_zoo
import commands
import imagenet_training_helpers as helpers
from bn_zoo import evaluation, runs, training
from bn_zoo.training import modeling

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

NUM_CLASSES = 8
SIZE = 32
KWARGS = {"input_shape": [SIZE, SIZE, 3], "depth_multiplier": 0.1,
          "classes": NUM_CLASSES + 1, "seed": 1}  # Class 0 = background.


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return helpers.write_data(tmp_path_factory.mktemp("imagenet"), num_train=0,
                              num_validation=10, num_classes=NUM_CLASSES)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("weights") / "bn_inception.weights.h5")
    bn_zoo.create_model("bn_inception", **KWARGS).save_weights(path)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, data_dir):
    """A trainer workdir as `trainers.train` leaves it (config.json and a
    checkpoint of the model at step 30), written without training."""
    path = str(tmp_path_factory.mktemp("bn_x5_run"))
    config = training.resolve(helpers.config("bn_x5", **helpers.overrides(data_dir)))
    model = modeling.create_model(config)
    checkpoint = tf.train.Checkpoint(model=model)
    tf.train.CheckpointManager(checkpoint, os.path.join(path, "checkpoints"),
                               max_to_keep=1).save(checkpoint_number=30)
    runs.write_json(os.path.join(path, "config.json"), training.config.to_dict(config))
    return path, [w.numpy() for w in model.weights]


def test_cli_ensemble_of_a_weights_file_and_a_workdir(data_dir, weights_file, workdir,
                                                      tmp_path):
    workdir, trained = workdir
    output = str(tmp_path / "results.json")
    data_flags = ["--source=tfrecord", f"--data_dir={data_dir}",
                  f"--num_classes={NUM_CLASSES}", "--num_examples=6"]
    # 10 crops, 3 images per model call: two equal batches (one trace per model).
    result = commands.run("trainers.evaluate", [
        "--model=bn_inception", f"--weights={weights_file}",
        f"--model_kwargs={json.dumps(KWARGS)}", f"--workdir={workdir}", "--crops=10",
        "--batch_size=30", f"--output={output}", *data_flags], timeout=300, tf_log_level="2")
    assert result.returncode == 0, result.stderr
    with open(output) as f:
        written = json.load(f)
    names = [f"bn_inception ({weights_file})", f"bn_x5 ({workdir}, step 30)"]
    assert [row["name"] for row in written["models"]] == names
    assert written["ensemble"]["name"] == "ensemble"
    assert (written["protocol"], written["image_size"], written["num_images"]) == (10, SIZE, 6)
    # Progress on stderr (time-stamped), the table on stdout.
    stamp = r"^\[\d+:\d\d:\d\d\] "
    lines = [re.sub(stamp, "", line) for line in result.stderr.splitlines()
             if re.match(stamp, line)]
    assert lines[0] == f"Loading bn_inception ({weights_file})"
    assert lines[1] == f"Loading {workdir}"
    assert lines[2].startswith("Evaluating 2 model(s) and their ensemble on ")
    assert result.stdout.startswith("10 crops (shorter side")
    table = result.stdout
    for row in written["models"] + [written["ensemble"]]:
        assert f"{row['name']}" in table and f"{row['top5']:6.2%}" in table
    assert "WARNING" not in result.stdout

    # The same evaluation in this process, through the library.
    members = evaluation.from_lists(
        models=["bn_inception"], weights=[weights_file], model_kwargs=[KWARGS],
        workdirs=[workdir])
    assert [m.preprocessing for m in members] == ["inception", "inception"]
    data = dict(source="tfrecord", data_dir=data_dir, num_classes=NUM_CLASSES)
    results = evaluation.evaluate(members, data, protocol=10, batch_size=30,
                                  num_examples=6, progress=False, keep_probabilities=True)
    for row, expected in zip(written["models"] + [written["ensemble"]], results.rows):
        assert (row["top1"], row["top5"]) == pytest.approx((expected.top1, expected.top5))
    # The 9-class model's background column is gone; the workdir's model has
    # the checkpoint's weights.
    assert results.probabilities[0].shape == (6, NUM_CLASSES)
    np.testing.assert_allclose(results.probabilities[0].sum(1), 1, rtol=1e-5)
    assert len(trained) == len(members[1].model.weights)
    for expected, restored in zip(trained, members[1].model.weights):
        np.testing.assert_array_equal(restored.numpy(), expected)


def test_cli_missing_data_fails_before_loading_any_model(tmp_path):
    missing = str(tmp_path / "nowhere")
    # Registered weights that would need a download: never fetched.
    result = commands.run("trainers.evaluate", [
        "--model=bn_inception", "--weights=imagenet", "--source=tfrecord",
        f"--data_dir={missing}"], timeout=300, tf_log_level="2")
    assert result.returncode == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert errors[0].startswith(f"ERROR (DataNotFoundError): The data directory {missing!r} "
                                "does not exist")


def test_members_from_lists_pair_and_refuse(weights_file):
    file_member = evaluation.registered(
        "bn_inception", weights_file, model_kwargs=KWARGS, preprocessing="caffe_bn_inception")
    assert file_member.preprocessing == "caffe_bn_inception"
    assert file_member.num_outputs == NUM_CLASSES + 1 and file_member.input_size == SIZE
    assert evaluation.background_columns(file_member, NUM_CLASSES) == 1
    with pytest.raises(ValueError, match="outputs 9 classes but the data has 1000"):
        evaluation.background_columns(file_member, 1000)

    with pytest.raises(ValueError, match="Unknown weights 'nope' for model 'bn_inception'. "
                       "Registered: .*imagenet.*; or pass the path of a '\\*.weights.h5'"):
        evaluation.registered("bn_inception", "nope")
    with pytest.raises(ValueError, match="Unknown model 'resnet50'. Known models: .*bn_inception"):
        evaluation.registered("resnet50", "imagenet")
    with pytest.raises(FileNotFoundError, match="missing.weights.h5' does not exist"):
        evaluation.registered("bn_inception", "/nonexistent/missing.weights.h5")
    with pytest.raises(ValueError, match="must not set \\['include_top'\\]"):
        evaluation.registered("bn_inception", weights_file, model_kwargs={"include_top": False})
    with pytest.raises(ValueError, match="Nothing to evaluate"):
        evaluation.from_lists()
    with pytest.raises(ValueError, match="Each model needs weights"):
        evaluation.from_lists(models=["bn_inception"])
    with pytest.raises(ValueError, match="2 weights for 3 models: give it once"):
        evaluation.from_lists(models=["bn_inception"] * 3, weights=["a", "b"])
    members = evaluation.members
    assert members.split_list(["a,b", " c ", ""]) == ["a", "b", "c"]
    assert members.parse_model_kwargs('{"classes": 1001}') == {"classes": 1001}
    assert members.parse_model_kwargs("{'classifier_activation': None}") == {
        "classifier_activation": None}
    with pytest.raises(ValueError, match="not a JSON or Python dict"):
        members.parse_model_kwargs("classes=1001")
