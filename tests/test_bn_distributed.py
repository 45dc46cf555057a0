"""`synchronized=True` and moving-statistic aggregation under
`tf.distribute.MirroredStrategy` on the 2 logical CPUs of conftest.py. References: numpy on the concatenated batch, and
`keras.layers.BatchNormalization` for gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bn_zoo.layers import BatchNormalization

EPSILON = 1e-3
MOMENTUM = 0.9
REPLICAS = 2
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def strategy(mirrored_strategy):
    assert mirrored_strategy.num_replicas_in_sync == REPLICAS
    return mirrored_strategy


def numpy_moments(x, axis):
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    x = np.asarray(x, np.float64)
    return x.mean(axes), x.var(axes), x.size // x.shape[axis]


def numpy_normalize(x, mean, variance, gamma, beta, axis):
    shape = [1] * x.ndim
    shape[axis % x.ndim] = -1
    r = lambda v: np.asarray(v, np.float64).reshape(shape)  # noqa: E731
    return r(gamma) * (x - r(mean)) / np.sqrt(r(variance) + EPSILON) + r(beta)


def make_case(shape, axis, seed):
    rng = np.random.default_rng(seed)
    channels = shape[axis]
    weights = [
        rng.uniform(0.5, 2.0, channels).astype("float32"),
        rng.normal(size=channels).astype("float32"),
        rng.normal(size=channels).astype("float32"),
        rng.uniform(0.5, 2.0, channels).astype("float32"),
    ]
    # The two halves have different statistics, so per-replica and global
    # statistics differ clearly.
    x = rng.normal(size=shape).astype("float32")
    half = shape[0] // REPLICAS
    x[:half] = x[:half] * 2.0 + 1.0
    projection = rng.normal(size=shape).astype("float32")
    return weights, x, projection


def replicated_step(strategy, layer, x, projection):
    """One training-mode call per replica on its half of the global batch;
    returns per-replica outputs, input gradients and (γ, β) gradients."""
    halves = np.split(x, REPLICAS)
    projections = np.split(projection, REPLICAS)
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: (
            tf.constant(halves[ctx.replica_id_in_sync_group]),
            tf.constant(projections[ctx.replica_id_in_sync_group]),
        )
    )

    @tf.function
    def step(inputs):
        def replica_fn(x_r, w_r):
            with tf.GradientTape() as tape:
                tape.watch(x_r)
                y_r = layer(x_r, training=True)
                loss = tf.reduce_sum(y_r * w_r)
            dx, dgamma, dbeta = tape.gradient(
                loss, [x_r, layer.gamma.value, layer.beta.value]
            )
            return y_r, dx, dgamma, dbeta

        y, dx, dgamma, dbeta = strategy.run(replica_fn, args=inputs)
        sum_ = tf.distribute.ReduceOp.SUM
        return (
            y,
            dx,
            strategy.reduce(sum_, dgamma, axis=None),
            strategy.reduce(sum_, dbeta, axis=None),
        )

    y, dx, dgamma, dbeta = step(per_replica)
    local = strategy.experimental_local_results
    return (
        np.concatenate([t.numpy() for t in local(y)]),
        np.concatenate([t.numpy() for t in local(dx)]),
        dgamma.numpy(),
        dbeta.numpy(),
    )


def distributed_layer(strategy, shape, axis, weights, **kwargs):
    with strategy.scope():
        layer = BatchNormalization(
            axis=axis, momentum=MOMENTUM, epsilon=EPSILON, **kwargs
        )
        layer.build((None,) + tuple(shape[1:]))
        for variable, value in zip(
            [layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance],
            weights,
        ):
            variable.assign(value)
    # One copy of every variable per replica.
    assert len(strategy.experimental_local_results(layer.moving_mean.value)) == REPLICAS
    return layer


CASES = [((8, 3), -1), ((4, 3, 3, 2), -1), ((4, 2, 3, 3), 1), ((4, 5, 3), 1)]
CASE_IDS = [f"{len(s)}d-axis{a}" for s, a in CASES]


@pytest.mark.parametrize("correction", ["unbiased", "biased"])
@pytest.mark.parametrize("shape,axis", CASES, ids=CASE_IDS)
def test_synchronized_equals_single_device_on_global_batch(
    strategy, shape, axis, correction
):
    weights, x, projection = make_case(shape, axis, seed=20)
    layer = distributed_layer(
        strategy,
        shape,
        axis,
        weights,
        synchronized=True,
        variance_correction=correction,
    )

    y, dx, dgamma, dbeta = replicated_step(strategy, layer, x, projection)

    mean, variance, count = numpy_moments(x, axis)  # the concatenated batch
    np.testing.assert_allclose(
        y, numpy_normalize(x, mean, variance, weights[0], weights[1], axis), **TOL
    )
    factor = count / (count - 1) if correction == "unbiased" else 1.0  # global m'
    np.testing.assert_allclose(
        layer.moving_mean.numpy(), MOMENTUM * weights[2] + (1 - MOMENTUM) * mean, **TOL
    )
    np.testing.assert_allclose(
        layer.moving_variance.numpy(),
        MOMENTUM * weights[3] + (1 - MOMENTUM) * factor * variance,
        **TOL,
    )

    # Gradients of the summed loss, through the all-reduced statistics, are
    # Keras' gradients on the concatenated batch on one device.
    reference = keras.layers.BatchNormalization(axis=axis, epsilon=EPSILON)
    reference.build(shape)
    reference.set_weights(weights)
    x_all = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_all)
        loss = tf.reduce_sum(reference(x_all, training=True) * projection)
    want = tape.gradient(loss, [x_all, reference.gamma.value, reference.beta.value])
    np.testing.assert_allclose(dx, want[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dgamma, want[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dbeta, want[2], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape,axis", CASES, ids=CASE_IDS)
def test_unsynchronized_moving_statistics_are_the_mean_of_replica_updates(
    strategy, shape, axis
):
    weights, x, projection = make_case(shape, axis, seed=21)
    layer = distributed_layer(strategy, shape, axis, weights)

    y, _, _, _ = replicated_step(strategy, layer, x, projection)

    outputs, means, variances = [], [], []
    for part in np.split(x, REPLICAS):
        mean, variance, count = numpy_moments(part, axis)  # this replica's m'
        outputs.append(
            numpy_normalize(part, mean, variance, weights[0], weights[1], axis)
        )
        means.append(MOMENTUM * weights[2] + (1 - MOMENTUM) * mean)
        variances.append(
            MOMENTUM * weights[3] + (1 - MOMENTUM) * count / (count - 1) * variance
        )
    # Each replica normalizes with its own statistics ...
    np.testing.assert_allclose(y, np.concatenate(outputs), **TOL)
    # ... and the stored averages are the mean of all replicas' updates, on
    # every replica's copy.
    for variable, updates in (
        (layer.moving_mean, means),
        (layer.moving_variance, variances),
    ):
        want = np.mean(updates, axis=0)
        assert not np.allclose(want, updates[0], atol=1e-3)  # not replica 0's
        for copy in strategy.experimental_local_results(variable.value):
            np.testing.assert_allclose(copy.numpy(), want, **TOL)


def test_synchronized_makes_one_collective_per_layer_each_way(strategy):
    # Forward: one all-reduce of every replica's (m', shift, mean, M2); backward:
    # one all-reduce of (Σ dy, Σ dy·x̂) in the custom gradient
    # (bn_zoo.layers.sync). Counted in the traced graph of a training step
    # (nothing runs, so no collective is launched).
    layers = [BatchNormalization(synchronized=True) for _ in range(3)]
    with strategy.scope():
        for layer in layers:
            layer.build((None, 4, 4, 8))

    def replica_step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = x
            for layer in layers:
                y = layer(y, training=True)
            loss = tf.reduce_sum(y * y)
        variables = [v for layer in layers for v in layer.trainable_variables]
        return tape.gradient(loss, [x] + variables)

    step = tf.function(lambda x: strategy.run(replica_step, args=(x,)))
    graph = step.get_concrete_function(tf.TensorSpec((4, 4, 4, 8))).graph
    collectives = [op for op in graph.get_operations() if op.type.startswith("Collective")]
    assert len(collectives) == 2 * len(layers) * REPLICAS, sorted(o.type for o in collectives)
