"""Networks of your own in the registry and the trainer:
`bn_zoo.register_model`, builders named by import path, and a small
Sequential convnet trained by `python -m trainers.train` mirrored on 2
logical CPUs with synchronized BN, exported by `python -m trainers.export`
(BN folded) in another process. References: Keras' own weights file, the
MNIST test labels, the trained model restored here, the SavedModel run by
TensorFlow alone."""

import json
import os
import re
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import bn_zoo
import commands
from bn_zoo.models import catalogue
from bn_zoo.training import summaries

NETS = textwrap.dedent('''
    """A researcher's own networks."""
    import keras
    import bn_zoo
    from bn_zoo.layers import BatchNormalization


    @bn_zoo.register_model(preprocessing="mnist", input_shape=(28, 28, 1), classes=10,
                           recipe={"batch_size_per_replica": 32, "base_learning_rate": 0.1})
    def small_convnet(classes=10, classifier_activation="softmax", seed=None,
                      batch_norm_kwargs=None):
        """A small convnet with BN after each convolution."""
        bn = dict(batch_norm_kwargs or {})
        init = keras.initializers.GlorotUniform(seed)
        return keras.Sequential([
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3, strides=2, use_bias=False, kernel_initializer=init),
            BatchNormalization(**bn),
            keras.layers.ReLU(),
            keras.layers.Conv2D(16, 3, strides=2, use_bias=False, kernel_initializer=init),
            BatchNormalization(**bn),
            keras.layers.ReLU(),
            keras.layers.Flatten(),
            keras.layers.Dense(classes, activation=classifier_activation,
                               kernel_initializer=init),
        ], name="small_convnet")


    def plain(classifier_activation="softmax"):
        """Not registered: named by import path."""
        inputs = keras.Input((6,))
        x = BatchNormalization()(keras.layers.Dense(4, use_bias=False)(inputs))
        return keras.Model(inputs, keras.layers.Dense(3, activation=classifier_activation)(x))


    def no_activation():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
''')


@pytest.fixture
def nets(tmp_path, monkeypatch):
    """The module `custom_nets` on the path, a registry of its own per test."""
    (tmp_path / "custom_nets.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(catalogue, "_MODELS", dict(catalogue._MODELS))  # undone after the test
    monkeypatch.delitem(sys.modules, "custom_nets", raising=False)
    import custom_nets

    yield custom_nets
    sys.modules.pop("custom_nets", None)


def test_register_model_adds_a_model_to_the_registry(nets):
    assert "small_convnet" in bn_zoo.list_models()
    info = bn_zoo.model_info("small_convnet")
    assert (info.family, info.preprocessing, info.num_classes) == ("custom", "mnist", 10)
    assert info.import_path == "custom_nets:small_convnet"
    assert info.description == "A small convnet with BN after each convolution."
    assert info.recipe["batch_size_per_replica"] == 32
    assert info.recipe["momentum"] == 0.9 and "momentum" in info.unstated
    assert bn_zoo.model_info("custom_nets:small_convnet").name == "small_convnet"
    model = bn_zoo.create_model("small_convnet", classifier_activation=None, seed=1,
                                weights=None)
    assert model.layers[-1].activation is keras.activations.linear
    # The zoo's own models are still there, unchanged.
    assert bn_zoo.model_info("bn_mlp").family == "mlp"


def test_weights_of_a_builder_without_a_weights_argument(nets, tmp_path):
    source = bn_zoo.create_model("small_convnet", seed=3)
    path = str(tmp_path / "convnet.weights.h5")
    source.save_weights(path)  # Keras' own file
    model = bn_zoo.create_model("custom_nets:small_convnet", seed=4, weights=path)
    for a, b in zip(source.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_builder_named_by_import_path(nets):
    info = bn_zoo.model_info("custom_nets:plain")
    assert (info.family, info.preprocessing) == ("custom", "inception")
    assert info.recipe["optimizer"] == "sgd_momentum" and info.recipe["train_steps"] is None
    model = bn_zoo.create_model("custom_nets:plain", seed=0)  # `seed` is dropped
    assert model.output.shape == (None, 3)
    config = bn_zoo.training.default_config()
    config.model.name = "custom_nets:plain"
    config.global_batch_size, config.num_train_steps = 16, 10
    config.optimizer.base_learning_rate = 0.2
    resolved = bn_zoo.training.resolve(config)
    assert resolved.optimizer.reference_batch_size == 16  # the rate is 0.2 itself
    assert resolved.schedule.decay_rate == 1.0 and resolved.optimizer.momentum == 0.9
    config.model.name = "small_convnet"  # registered: recorded by import path
    assert bn_zoo.training.resolve(config).model.name == "custom_nets:small_convnet"
    config.synchronized_batch_norm = True
    with pytest.raises(bn_zoo.training.ConfigError, match="takes `batch_norm_kwargs`"):
        config.model.name = "custom_nets:plain"
        bn_zoo.training.resolve(config)
    config.synchronized_batch_norm = False
    config.model.kwargs.depth_multiplier = 0.5  # as configs/imagenet.py sets
    with pytest.raises(bn_zoo.training.ConfigError, match="'depth_multiplier', which the mo"):
        bn_zoo.training.resolve(config)
    del config.model.kwargs["depth_multiplier"]
    with pytest.raises(bn_zoo.training.ConfigError, match="base_learning_rate"):
        config.model.name = "custom_nets:plain"
        config.optimizer.base_learning_rate = None
        bn_zoo.training.resolve(config)


@pytest.mark.parametrize("call,error,match", [
    (lambda: bn_zoo.register_model(lambda classifier_activation=None: None, name="bn_mlp"),
     ValueError, "zoo's own models"),
    (lambda: bn_zoo.register_model(name="small_convnet")(lambda classifier_activation=None: 0),
     ValueError, "already registered by 'custom_nets:small_convnet'"),
    (lambda: bn_zoo.register_model(lambda: None, name="x"), TypeError, "classifier_activation"),
    (lambda: bn_zoo.register_model(preprocessing="raw")(lambda classifier_activation=None: 0),
     ValueError, "preprocessing"),
    (lambda: bn_zoo.model_info("custom_nets:no_activation"), TypeError, "classifier_activation"),
    (lambda: bn_zoo.model_info("no_such_module:f"), ValueError, "Cannot import"),
    (lambda: bn_zoo.model_info("custom_nets:missing"), ValueError, "has no 'missing'"),
    (lambda: bn_zoo.create_model("custom_nets:plain", batch_norm_kwargs={"synchronized": True}),
     TypeError, "takes no `batch_norm_kwargs`"),
    (lambda: bn_zoo.create_model("custom_nets:plain", depth_multiplier=0.5, lrn=None),
     TypeError, "takes no 'depth_multiplier', 'lrn'. Drop them"),
    (lambda: bn_zoo.model_info("resnet"), ValueError, "Unknown model 'resnet'.*register_model"),
])
def test_bad_registrations_and_names(nets, call, error, match):
    before = bn_zoo.list_models()
    with pytest.raises(error, match=match):
        call()
    assert bn_zoo.list_models() == before


CONFIG = textwrap.dedent('''
    import custom_nets  # registers small_convnet
    from bn_zoo import training


    def get_config():
        config = training.default_config()
        config.model.name = "small_convnet"
        config.data.train_split = "train[:6400]"
        config.data.eval_split = "test[:2000]"
        config.num_train_steps = 100
        config.steps_per_loop = config.log_every_steps = config.eval_every_steps = 50
        config.checkpoint_every_steps = 100
        config.eval_batch_size = 500
        config.population_batches = 20
        return config
''')


def _run(module, args, env):
    run = commands.run(module, args, env=env, tf_log_level="2")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return run


def test_train_mirrored_and_export_a_custom_convnet(tmp_path, monkeypatch):
    (tmp_path / "custom_nets.py").write_text(NETS)
    (tmp_path / "convnet_config.py").write_text(CONFIG)
    workdir, export_dir = tmp_path / "work", tmp_path / "serving"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), commands.ROOT]))
    train = _run("trainers.train", [f"--config={tmp_path / 'convnet_config.py'}",
                                    f"--workdir={workdir}", "--strategy=mirrored",
                                    "--config.num_cpu_devices=2",
                                    "--config.synchronized_batch_norm=True"], env)
    assert re.search(r"Training custom_nets:small_convnet .*with MirroredStrategy \(2 replica",
                     train.stdout + train.stderr)
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["model"]["name"] == "custom_nets:small_convnet"
    assert saved["global_batch_size"] == 32 and saved["optimizer"]["base_learning_rate"] == 0.1
    final = json.loads((workdir / "final.json").read_text())
    assert final["inference_statistics"] == "population"
    _run("trainers.export", [f"--workdir={workdir}", f"--export_dir={export_dir}"], env)

    # Here, by the model's own import path: the trained model, population
    # statistics active, against the labels.
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(catalogue, "_MODELS", dict(catalogue._MODELS))
    monkeypatch.delitem(sys.modules, "custom_nets", raising=False)
    from bn_zoo.data import mnist

    model = bn_zoo.training.restore_model(str(workdir))
    images, labels = mnist.load("test[:2000]")
    probabilities = model.predict(images.astype("float32") / 255.0, verbose=0)
    accuracy = np.mean(probabilities.argmax(-1) == labels)
    assert abs(accuracy - final["eval_accuracy_population"]) <= 1e-3
    assert accuracy > 0.8, accuracy  # 100 steps trained it
    events = [str(p) for p in (workdir / "tensorboard").rglob("events.out.tfevents*")]
    scalars = {}
    for path in events:
        scalars.update(summaries.read_scalars(path))
    assert scalars["eval/accuracy_population"] == [
        (100, pytest.approx(final["eval_accuracy_population"], abs=1e-6))]

    # The export (BN folded into the convolutions), run by TensorFlow alone.
    version = os.listdir(export_dir)
    assert len(version) == 1
    serving = tf.saved_model.load(str(export_dir / version[0]))
    out = serving.signatures["serving_default"](tf.constant(images[:64].astype("float32")))
    np.testing.assert_allclose(out["probabilities"].numpy(), probabilities[:64], atol=1e-5)
    sys.modules.pop("custom_nets", None)
