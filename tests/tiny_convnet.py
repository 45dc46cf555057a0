"""A small convnet with our BN after each convolution, and a trainer config
that trains it on ImageNet-layout data (`--config=tests/tiny_convnet.py`,
the model named by import path, `tiny_convnet:build`): for trainer tests
whose subject is distribution and recovery rather than the Inception
network. It traces in seconds where a 0.1-depth Inception takes a minute
per process."""

import keras
import ml_collections

from bn_zoo.layers import BatchNormalization


def build(classes=8, classifier_activation="softmax", seed=None, batch_norm_kwargs=None,
          input_shape=(32, 32, 3)):
    bn = dict(batch_norm_kwargs or {})
    init = keras.initializers.GlorotUniform(seed)
    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((8, 16)):
        x = keras.layers.Conv2D(filters, 3, strides=2, use_bias=False, kernel_initializer=init,
                                name=f"conv{i + 1}")(x)
        x = BatchNormalization(name=f"conv{i + 1}_bn", **bn)(x)
        x = keras.layers.ReLU(name=f"conv{i + 1}_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(classes, activation=classifier_activation,
                                 kernel_initializer=init, name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny_convnet")


def get_config():
    """configs/imagenet.py:bn_x5's recipe and data, with this network."""
    from configs import imagenet

    config = imagenet.get_config("bn_x5")
    config.model.name = "tiny_convnet:build"
    config.model.kwargs = ml_collections.ConfigDict({
        "classes": config.data.get_ref("num_classes"),
        "input_shape": (224, 224, 3),
        "batch_norm_kwargs": {"momentum": 0.99},
    })
    config.data.distortion_strength = 0.5
    return config


def sgd_config(data, learning_rate=0.1, decay_rate=1.0, decay_steps=10, **model_kwargs):
    """A trainer config of this network (`model_kwargs` for `build`) on data
    config `data`: SGD with momentum 0.9 and no weight decay, the learning
    rate times `decay_rate` every `decay_steps` steps. Batch sizes, steps
    and intervals are the caller's."""
    from bn_zoo.training import config as config_lib

    config = config_lib.default_config()
    config.model.name = "tiny_convnet:build"
    config.model.kwargs = ml_collections.ConfigDict(model_kwargs)
    config.data = data
    config.optimizer.name = "sgd_momentum"
    config.optimizer.base_learning_rate = learning_rate
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = 0.0
    config.schedule.decay_rate = decay_rate
    config.schedule.decay_steps = decay_steps
    return config
