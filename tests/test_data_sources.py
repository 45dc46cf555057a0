"""Data sources are pluggable: `bn_zoo.register_data_source` and import paths
`"package.module:Class"`, as models are (tests/user_source.py is the user's
module, outside bn_zoo), and every source names its classes.

Checked: a registered name and an import path resolve through the trainer's
config and `inputs.create`, which hands `model_input` (the model's input
shape and its weights' crop) only to sources that take it; bn_zoo's own
names cannot be taken; a class lacking the interface is refused with what it
lacks; MNIST's classes are "0".."9", ImageNet's 1000 the label set's names
(`bn_zoo.models.labels`), a source without names gets its class indices.
"""

import os

import pytest

import bn_zoo
import tiny_convnet
from bn_zoo.data import sources
from bn_zoo.training import config as config_lib
from bn_zoo.training import inputs
from bn_zoo.training.errors import ConfigError

MNIST_READY = os.path.isdir(os.path.join(os.environ.get("TFDS_DATA_DIR", "/nonexistent"),
                                         "mnist"))


def _config(data_name, **model_kwargs):
    config = tiny_convnet.sgd_config(inputs.default_config(data_name), **model_kwargs)
    config.global_batch_size = 4
    config.num_train_steps = 2
    return config


def test_import_path_and_registered_name():
    import user_source

    config = config_lib.resolve(_config("user_source:Squares", input_shape=(6, 6, 3)))
    source = inputs.create(config.data, None, model=config.model)
    assert isinstance(source, user_source.Squares)
    assert source.model_input == sources.ModelInput((6, 6, 3))  # Crop: the model's default.
    assert source.class_names == ["dark", "bright"]

    decorated = bn_zoo.register_data_source("squares")(user_source.Squares)
    assert decorated is user_source.Squares
    assert "squares" in inputs.INPUTS and "squares" in sources.names()
    data = inputs.default_config("squares")
    data.name = "squares"
    config = _config("squares", input_shape=(6, 6, 3))
    config.data = data
    config = config_lib.resolve(config)
    assert isinstance(inputs.create(config.data, None, model=config.model), user_source.Squares)
    assert inputs.recorded_name("squares") == "user_source:Squares"
    assert inputs.recorded_name("mnist") == "mnist"
    # The same class again is fine; another under that name is not.
    bn_zoo.register_data_source("squares")(user_source.Squares)
    with pytest.raises(ValueError, match="'squares' is taken by user_source.Squares"):
        bn_zoo.register_data_source("squares")(user_source.NoNames)


def test_refusals():
    import user_source

    for name in sources.BUILTIN_NAMES:
        with pytest.raises(ValueError, match=f"{name!r} is one of bn_zoo's data sources"):
            bn_zoo.register_data_source(name)(user_source.Squares)
    with pytest.raises(ValueError, match="lacks check_config, FIELD_DOCS, train_dataset_fn"):
        bn_zoo.register_data_source("incomplete")(user_source.Incomplete)
    with pytest.raises(ConfigError, match="lacks check_config"):
        inputs.default_config("user_source:Incomplete")
    with pytest.raises(ConfigError, match="Cannot import module 'no_such_module'"):
        config_lib.resolve(_config("user_source:Squares").to_dict() | {
            "data": {"name": "no_such_module:Source"}})
    with pytest.raises(ConfigError, match="Unknown data source 'photos'.*register_data_source"):
        inputs.default_config("photos")
    with pytest.raises(ConfigError, match="config.data.examples must be >= 2"):
        config = _config("user_source:Squares")
        config.data.examples = 1
        config_lib.resolve(config)


def test_class_names_of_every_source(tmp_path):
    from bn_zoo.data import tfrecords
    from bn_zoo.models import labels

    config = _config("user_source:Squares")
    config.data.name = "user_source:NoNames"
    assert inputs.create(config.data).class_names == ["0", "1"]

    tfrecords.write_synthetic_imagenet(str(tmp_path), num_train=4, num_validation=4,
                                       num_classes=4, num_train_shards=1,
                                       num_validation_shards=1)
    data = inputs.default_config("imagenet")
    data.update({"source": "tfrecord", "data_dir": str(tmp_path), "num_classes": 4,
                 "distortion_strength": 0.0, "shuffle_buffer_size": 1})
    assert inputs.create(data).class_names == ["0", "1", "2", "3"]
    data.num_classes = 1000  # ImageNet's classes: the label set's names.
    names = inputs.create(data).class_names
    assert names == list(labels.class_names("imagenet1000")) and names[0] == "tench"


@pytest.mark.skipif(not MNIST_READY, reason="needs TFDS_DATA_DIR's prepared MNIST")
@pytest.mark.parametrize("name", ["mnist", "mnist_inception"])
def test_mnist_class_names(name):
    data = inputs.default_config(name)
    data.train_split, data.eval_split = "train[:10]", "test[:10]"
    assert inputs.create(data).class_names == [str(d) for d in range(10)]
