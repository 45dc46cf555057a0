"""Fine-tuning on a folder of real photos through the real command.

`python -m trainers.train --config=configs/finetune.py` with only the data
folders, the weights file and the network's size on the command line (the
recipe's optimizer, schedule, augmentation, label smoothing, freeze then
unfreeze, population statistics as they are), on JPEG crops of
scikit-image's photos (tests/photo_data.py), four classes, a validation
folder of other crops.

The weights file is made by a 1000-class tiny_convnet (tests/tiny_convnet.py)
trained on the photos' training folder until its BN moving averages caught
up, and saved with `bn_zoo.runs.save_weights`. The run is stopped by a real
SIGTERM in its frozen phase: there every variable of the backbone, BN
statistics and update counters included, equals the file's (read with
h5py) and the head is new. Resumed, it unfreezes at the same step and ends
with the weights and metrics of an uninterrupted run, the classes learned
well above chance (0.25); the class names are the folders'.
"""

import os
import re
import signal

import h5py
import numpy as np
import pytest
import tensorflow as tf

import commands
import config_flags
import photo_data
import tiny_convnet
from bn_zoo import runs, training
from configs import finetune

pytestmark = pytest.mark.heavy  # tests/conftest.py: scheduled first

SIZE = {"model.name": "tiny_convnet:build", "model.kwargs.input_shape": (32, 32, 3),
        "global_batch_size": 16, "steps_per_loop": 10, "log_every_steps": 10,
        "eval_every_steps": 20, "checkpoint_every_steps": 20, "eval_batch_size": 32,
        "schedule.warmup_steps": 5}
# Keras' weights-file groups of tiny_convnet's layers with weights.
GROUPS = {"conv1": "conv2d", "conv1_bn": "batch_normalization", "conv2": "conv2d_1",
          "conv2_bn": "batch_normalization_1", "predictions": "dense"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    train, validation = str(root / "train"), str(root / "validation")
    photo_data.write_folder(train, classes=photo_data.PHOTOS, per_class=16, seed=0,
                            formats=("jpg",))
    photo_data.write_folder(validation, classes=photo_data.PHOTOS, per_class=8, seed=1,
                            formats=("jpg",))
    # The "pretrained" network: 1000 outputs, trained on the photos' labels
    # 0-3 for 500 steps (0.99^500 < 1%: its moving averages have caught up).
    config = finetune.get_config()
    for path, value in {**SIZE, "model.kwargs.classes": 1000, "model.freeze": "none",
                        "num_train_steps": 500, "steps_per_loop": 500, "log_every_steps": 500,
                        "eval_every_steps": 500, "checkpoint_every_steps": 500,
                        "schedule.warmup_steps": 50, "population_batches": 0,
                        "data.directory": train, "data.validation_directory": validation,
                        "optimizer.base_learning_rate": 0.05}.items():
        config_flags.set_field(config, path, value)
    pretrain = str(root / "pretrain")
    training.train(config, pretrain)
    weights = str(root / "tiny_convnet_1000.weights.h5")
    runs.save_weights(pretrain, weights)
    return train, validation, weights


def checkpoint_values(path):
    """{layer name: [arrays]} of a training checkpoint of the 4-class network."""
    model = tiny_convnet.build(classes=4, classifier_activation=None)
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    return {name: [np.asarray(v) for v in model.get_layer(name).weights] for name in GROUPS}


def file_values(path):
    with h5py.File(path, "r") as f:
        return {name: [np.asarray(f[f"layers/{group}/vars/{i}"])
                       for i in range(len(f[f"layers/{group}/vars"]))]
                for name, group in GROUPS.items()}


def test_finetune_recipe_on_photos_freezes_unfreezes_and_resumes_exactly(photos, tmp_path):
    train, validation, weights = photos
    workdir = str(tmp_path / "run")
    fields = {**SIZE, "data.directory": train, "data.validation_directory": validation,
              "model.weights": weights, "num_train_steps": 90, "model.freeze_steps": 60}
    process = commands.launch(
        "trainers.train", ["--config=configs/finetune.py", f"--workdir={workdir}",
                           *[f"--config.{k}={v}".replace(" ", "") for k, v in fields.items()]],
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([commands.TESTS,
                                                         os.environ.get("PYTHONPATH", "")])),
        tf_log_level="2")
    lines = []
    for line in process.stderr:
        lines.append(line)
        match = re.search(r"\] (?:train )?step (\d+)/\d+ \(", line)
        if match and int(match.group(1)) >= 10:
            process.send_signal(signal.SIGTERM)
            break
    err = "".join(lines) + process.communicate(timeout=300)[1]
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    stopped = runs.latest_step(os.path.join(workdir, "checkpoints"))
    assert 10 <= stopped < 60, err[-3000:]  # In the frozen phase.
    assert (f"Loaded 18 of 20 variables from {weights}; 2 new (initialized afresh): "
            "predictions/kernel (16, 4), predictions/bias (4,); 1 layer(s) of the file "
            "unused: layers/dense.") in err
    assert "The data has 4 classes: model.kwargs.classes=4." in err
    assert "have caught up" in err and "no estimate needed before freezing" in err
    assert runs.read_class_names(workdir) == tuple(sorted(photo_data.PHOTOS))

    # Frozen: every backbone variable, BN statistics and counters included, is
    # the file's; the head is new, 4 columns.
    reference = file_values(weights)
    frozen = checkpoint_values(os.path.join(workdir, "checkpoints", f"ckpt-{stopped}"))
    for name in GROUPS:
        if name == "predictions":
            assert [v.shape for v in frozen[name]] == [(16, 4), (4,)]
            assert [v.shape for v in reference[name]] == [(16, 1000), (1000,)]
            continue
        assert len(frozen[name]) == len(reference[name]), name
        for i, (got, want) in enumerate(zip(frozen[name], reference[name])):
            np.testing.assert_array_equal(got, want, err_msg=f"{name} variable {i}")

    config = finetune.get_config()
    for path, value in fields.items():
        config_flags.set_field(config, path, value)
    training.train(config, workdir)  # The rerun, to the end.
    uninterrupted = str(tmp_path / "uninterrupted")
    training.train(config, uninterrupted)
    resumed = checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-90"))
    expected = checkpoint_values(os.path.join(uninterrupted, "checkpoints", "ckpt-90"))
    for name in GROUPS:
        for got, want in zip(resumed[name], expected[name]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
    # Unfrozen from step 61: the backbone trained on.
    assert not np.allclose(resumed["conv1"][0], reference["conv1"][0])
    rows, want = runs.read_metrics(workdir), runs.read_metrics(uninterrupted)
    assert [r["step"] for r in rows] == [r["step"] for r in want] == [0, 20, 40, 60, 80, 90]
    np.testing.assert_allclose([r["eval_loss"] for r in rows], [r["eval_loss"] for r in want],
                               rtol=1e-5)
    final = runs.read_final(workdir)
    assert final["eval_accuracy_moving"] == rows[-1]["eval_accuracy"]
    # Chance is 0.25.
    assert rows[-1]["eval_accuracy"] >= 0.75 and final["eval_accuracy_population"] >= 0.75
