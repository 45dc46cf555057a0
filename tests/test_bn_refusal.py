"""A training step refused for m' <= 1 changes nothing.

Every test snapshots every variable (the model's, the optimizer's, the
metrics'), runs a step that the layer must refuse, and compares: the refusal
must come before any write, including the optimizer's iteration counter and
AdamW's decoupled weight decay, which do not depend on the loss.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bn_zoo.layers import BatchNormalization
from bn_zoo.training import config as config_lib
from bn_zoo.training import modeling, optimizers, steps
from bn_zoo.training import strategy as strategy_lib
from configs import mnist as mnist_configs

SINGLE_VALUE = "expected more than 1 value per channel"


def snapshot(variables):
    return [np.array(v.numpy(), copy=True) for v in variables]


def assert_unchanged(variables, before):
    changed = [
        v.path if hasattr(v, "path") else v.name
        for v, old in zip(variables, before)
        if not np.array_equal(v.numpy(), old)
    ]
    assert not changed, f"a refused step changed {changed}"


def dense_bn_model(optimizer):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, bias_initializer="ones")(inputs)
    outputs = BatchNormalization(beta_initializer="ones")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer, "mse", metrics=["mae"])
    return model


def every_variable(model):
    metrics = [v for m in model.metrics for v in m.variables]
    return model.variables + model.optimizer.variables + metrics


OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.1),
    "adamw": lambda: keras.optimizers.AdamW(0.1, weight_decay=0.5),
    "sgd_ema": lambda: keras.optimizers.SGD(0.1, use_ema=True),
}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_train_on_batch_with_a_dynamic_batch_of_one(optimizer):
    model = dense_bn_model(OPTIMIZERS[optimizer]())
    rng = np.random.default_rng(0)
    # Two batch sizes make Keras retrace with a dynamic batch dimension, so m'
    # is only known when the step runs.
    for n in (2, 3):
        model.train_on_batch(rng.normal(size=(n, 4)), rng.normal(size=(n, 4)))
    model.reset_metrics()
    variables = every_variable(model)
    before = snapshot(variables)
    with pytest.raises(tf.errors.InvalidArgumentError, match=SINGLE_VALUE):
        model.train_on_batch(rng.normal(size=(1, 4)), rng.normal(size=(1, 4)))
    assert_unchanged(variables, before)


def test_fit_stops_at_a_last_batch_of_one_with_the_state_of_the_steps_before():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4)).astype("float32")
    y = rng.normal(size=(5, 4)).astype("float32")
    keras.utils.set_random_seed(3)
    model = dense_bn_model(keras.optimizers.AdamW(0.1, weight_decay=0.5))
    reference = dense_bn_model(keras.optimizers.AdamW(0.1, weight_decay=0.5))
    reference.set_weights(model.get_weights())
    # Batches of 2, 2 and 1: the last one must be refused without a trace.
    with pytest.raises(tf.errors.InvalidArgumentError, match=SINGLE_VALUE):
        model.fit(x, y, batch_size=2, shuffle=False, verbose=0)
    reference.fit(x[:4], y[:4], batch_size=2, shuffle=False, verbose=0)
    for ours, want in zip(
        model.variables + model.optimizer.variables,
        reference.variables + reference.optimizer.variables,
    ):
        np.testing.assert_array_equal(ours.numpy(), want.numpy(), err_msg=ours.path)
    assert int(model.optimizer.iterations.numpy()) == 2


@pytest.mark.parametrize("compiled", ["eager", "tf.function"])
def test_a_mask_that_keeps_one_position_is_refused(compiled):
    layer = BatchNormalization(momentum=0.5)
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 3, 4)), tf.float32)
    layer.build(x.shape)
    layer.moving_mean.assign([0.1, 0.2, 0.3, 0.4])
    mask = tf.constant([[True, False, False], [False, False, False]])
    call = lambda x, mask: layer(x, training=True, mask=mask)  # noqa: E731
    if compiled == "tf.function":
        call = tf.function(call)
    before = snapshot(layer.variables)
    with pytest.raises(tf.errors.InvalidArgumentError, match=SINGLE_VALUE):
        call(x, mask)
    assert_unchanged(layer.variables, before)


def test_under_xla_a_batch_of_one_leaves_the_moving_statistics_as_they_were():
    # XLA drops assertions, so nothing can stop the step; the moving statistics
    # must still not become inf/NaN (m'/(m'-1) with m' = 1).
    layer = BatchNormalization(momentum=0.5)
    layer.build((None, 3))
    layer.moving_variance.assign([0.5, 2.0, 3.0])
    step = tf.function(
        lambda x: layer(x, training=True),
        jit_compile=True,
        input_signature=[tf.TensorSpec((None, 3), tf.float32)],
    )
    before = snapshot([layer.moving_mean, layer.moving_variance])
    y = step(tf.constant([[1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(y.numpy(), np.zeros((1, 3)))  # x̂ = 0, so y = β
    assert_unchanged([layer.moving_mean, layer.moving_variance], before)


def test_the_trainer_loop_refuses_a_dynamic_batch_of_one_per_replica():
    config = mnist_configs.get_config("bn_mlp")
    config.global_batch_size = 4
    config.num_cpu_devices = 2
    config = config_lib.resolve(config)
    strategy = strategy_lib.create_strategy("mirrored")  # the trainer's, on 2 logical CPUs
    with strategy.scope():
        model = modeling.create_model(config)
        optimizer = optimizers.create_optimizer(config)
        optimizer.build(model.trainable_variables)
    loop = steps.Steps(config, strategy, model, optimizer)

    def dataset_fn(context):
        # One pipeline feeds both replicas in turn: a step of per-replica
        # batches of 2, then one of 1, with a dynamic batch dimension.
        sizes = tf.data.Dataset.from_tensor_slices([2, 2, 1, 1])
        return sizes.map(
            lambda n: (
                tf.random.stateless_uniform([n, 28, 28, 1], [context.input_pipeline_id, 0]),
                tf.zeros([n], tf.int32),
            )
        )

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    loop.train_loop(iterator, tf.constant(1))  # a legitimate step traces the loop
    loop.train_sums.read_and_reset()
    variables = model.variables + optimizer.variables
    before = snapshot(variables)
    with pytest.raises(tf.errors.InvalidArgumentError, match=SINGLE_VALUE):
        loop.train_loop(iterator, tf.constant(1))
    assert_unchanged(variables, before)
    assert loop.train_sums.read_and_reset() == {"loss": 0.0, "correct": 0.0, "count": 0.0}
