"""Batch Renormalization, Ghost Batch Normalization and zero-debiased moving
averages in `bn_zoo.layers.BatchNormalization`, against tf_keras's and Keras 3's layers, numpy float64 and
TensorFlow's `assign_moving_average(zero_debias=True)`."""

import json

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from absl import logging as absl_logging

import bn_zoo
from bn_zoo import population
from bn_zoo.layers import BatchNormalization, moving, renorm

EPSILON = 1e-3
MOMENTUM = 0.9
RENORM_MOMENTUM = 0.8
TOL = dict(rtol=2e-5, atol=2e-5)
# Tight enough that r and d are clipped in some steps and channels, not all.
CLIPPING = {"rmin": 0.8, "rmax": 1.25, "dmax": 0.4}


# ----------------------------------------------------------- numpy reference
def bound(value, step):
    if not isinstance(value, (list, tuple)):
        return value
    start, end, begin, stop = value
    return start + (end - start) * min(max((step - begin) / (stop - begin), 0.0), 1.0)


def ema(old, value, momentum, t, zero_debias):
    """TensorFlow's zero-debiased average kept as in the layer: t updates so far."""
    if not zero_debias:
        return momentum * old + (1 - momentum) * value
    biased = old * (1 - momentum**t)
    return (momentum * biased + (1 - momentum) * value) / (1 - momentum ** (t + 1))


class NumpyLayer:
    """The layer's documented arithmetic in float64, channels moved last."""

    def __init__(self, weights, axis, renorm=False, clipping=None, virtual_batch_size=None,
                 correction="unbiased", zero_debias=False):
        self.gamma, self.beta, self.mean, self.var = (np.float64(w) for w in weights)
        self.renorm_mean, self.renorm_std = self.mean.copy(), np.sqrt(self.var + EPSILON)
        self.axis, self.renorm, self.clipping = axis, renorm, clipping or {}
        self.vbs, self.correction, self.zero_debias, self.t = (
            virtual_batch_size, correction, zero_debias, 0)

    def train(self, x):
        x = np.moveaxis(np.float64(x), self.axis, -1)
        n = x.shape[0]
        vbs = self.vbs or n
        groups = x.reshape((vbs, n // vbs) + x.shape[1:])
        y = np.empty_like(groups)
        means, variances, stds = [], [], []
        for j in range(n // vbs):
            g = groups[:, j]
            axes = tuple(range(g.ndim - 1))
            mu, var = g.mean(axes), g.var(axes)
            count = g.size // g.shape[-1]
            c = count / (count - 1) if self.correction == "unbiased" else 1.0
            x_hat = (g - mu) / np.sqrt(var + EPSILON)
            if self.renorm:
                sigma = np.maximum(self.renorm_std, np.sqrt(EPSILON))
                r = np.sqrt(var + EPSILON) / sigma
                d = (mu - self.renorm_mean) / sigma
                rmin, rmax, dmax = (bound(self.clipping.get(k), self.t)
                                    for k in ("rmin", "rmax", "dmax"))
                r = np.clip(r, 0 if rmin is None else rmin, np.inf if rmax is None else rmax)
                d = np.clip(d, -dmax, dmax) if dmax is not None else d
                x_hat = x_hat * r + d
            y[:, j] = self.gamma * x_hat + self.beta
            means.append(mu)
            variances.append(c * var)
            stds.append(np.sqrt(c * var + EPSILON))
        mu, var, std = np.mean(means, 0), np.mean(variances, 0), np.mean(stds, 0)
        self.mean = ema(self.mean, mu, MOMENTUM, self.t, self.zero_debias)
        if self.renorm:
            moving_std = ema(np.sqrt(self.var + EPSILON), std, MOMENTUM, self.t, self.zero_debias)
            self.var = np.maximum(moving_std**2 - EPSILON, 0)
            self.renorm_mean = ema(self.renorm_mean, mu, RENORM_MOMENTUM, self.t, self.zero_debias)
            self.renorm_std = ema(self.renorm_std, std, RENORM_MOMENTUM, self.t, self.zero_debias)
        else:
            self.var = ema(self.var, var, MOMENTUM, self.t, self.zero_debias)
        self.t += 1
        return np.moveaxis(y.reshape(x.shape), -1, self.axis)


# ---------------------------------------------------------------- helpers
def batches(shape, axis, steps, seed):
    """Training batches whose per-channel mean and scale drift from step to
    step, so that r and d move and the averages cannot cancel."""
    rng = np.random.default_rng(seed)
    channels = shape[axis]
    bshape = [1] * len(shape)
    bshape[axis] = channels
    out = []
    for _ in range(steps):
        loc = rng.normal(0, 1.5, channels).reshape(bshape)
        scale = rng.uniform(0.5, 2.0, channels).reshape(bshape)
        x = loc + scale * rng.normal(size=shape)
        out.append((x.astype("float32"), rng.normal(size=shape).astype("float32")))
    return out


def random_weights(channels, seed):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.5, 2.0, channels).astype("float32"),
            rng.normal(0, 1, channels).astype("float32"),
            rng.normal(0, 1, channels).astype("float32"),
            rng.uniform(0.5, 2.0, channels).astype("float32")]


def ours(shape, axis, weights, **kwargs):
    layer = BatchNormalization(axis=axis, momentum=MOMENTUM, epsilon=EPSILON, **kwargs)
    layer.build(shape)
    for variable, value in zip(
            [layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance], weights):
        variable.assign(value)
    if layer.renorm:
        layer.renorm_mean.assign(weights[2])
        layer.renorm_stddev.assign(np.sqrt(weights[3] + EPSILON))
    return layer


def reference_layer(module, shape, axis, weights, **kwargs):
    layer = module.layers.BatchNormalization(
        axis=axis, momentum=MOMENTUM, epsilon=EPSILON, **kwargs)
    layer.build(shape)
    values = {"gamma": weights[0], "beta": weights[1], "moving_mean": weights[2],
              "moving_variance": weights[3], "moving_stddev": np.sqrt(weights[3] + EPSILON),
              "renorm_mean": weights[2], "renorm_stddev": np.sqrt(weights[3] + EPSILON)}
    for variable in layer.weights:
        name = variable.name.split("/")[-1].split(":")[0]
        variable.assign(values[name].reshape(variable.shape))
    return layer


def training_step(layer, x, dy):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    grads = tape.gradient(y, [x, layer.gamma, layer.beta], output_gradients=tf.constant(dy))
    return [np.asarray(y)] + [np.asarray(g).reshape(-1) if i else np.asarray(g)
                              for i, g in enumerate(grads)]


def statistic(layer, name):
    return np.asarray(getattr(layer, name)).reshape(-1)


# ------------------------------------------------- against the references
RENORM_CASES = [((16, 5), -1), ((6, 4, 5, 3), -1), ((6, 3, 4, 5), 1)]


@pytest.mark.parametrize("shape,axis", RENORM_CASES, ids=["dense", "nhwc-fused", "nchw"])
def test_renorm_matches_tf_keras_and_keras(shape, axis):
    weights = random_weights(shape[axis], seed=1)
    kwargs = dict(renorm=True, renorm_clipping=CLIPPING, renorm_momentum=RENORM_MOMENTUM)
    layer = ours(shape, axis, weights, variance_correction="biased", **kwargs)
    references = {"tf_keras": reference_layer(tf_keras, shape, axis, weights, **kwargs),
                  "keras": reference_layer(keras, shape, axis, weights, **kwargs)}
    clipped = []
    for x, dy in batches(shape, axis, steps=4, seed=2):
        r, _ = layer._renorm_correction(*_moments(x, axis))
        clipped.append(np.mean(np.isin(np.asarray(r), [CLIPPING["rmin"], CLIPPING["rmax"]])))
        got = training_step(layer, x, dy)
        for name, reference in references.items():
            want = training_step(reference, x, dy)
            for what, a, b in zip(["y", "dx", "dgamma", "dbeta"], got, want):
                np.testing.assert_allclose(a, b, **TOL, err_msg=f"{name} {what}")
            for stat in ("moving_mean", "moving_variance", "renorm_mean", "renorm_stddev"):
                np.testing.assert_allclose(statistic(layer, stat), statistic(reference, stat),
                                           **TOL, err_msg=f"{name} {stat}")
    assert 0 < np.mean(clipped) < 1  # the clipping was exercised, not everywhere


def _moments(x, axis):
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    return (tf.constant(x.mean(axes), tf.float32), tf.constant(x.var(axes), tf.float32))


GHOST_CASES = [((12, 5), -1), ((8, 3, 4, 3), -1), ((8, 3, 3, 4), 1), ((8, 3, 6), -1)]


@pytest.mark.parametrize("shape,axis", GHOST_CASES, ids=["dense", "nhwc", "nchw", "3d"])
def test_ghost_batches_match_tf_keras(shape, axis):
    weights = random_weights(shape[axis], seed=3)
    vbs = 4 if shape[0] % 4 == 0 else 3
    layer = ours(shape, axis, weights, variance_correction="biased", virtual_batch_size=vbs)
    reference = reference_layer(tf_keras, shape, axis, weights, virtual_batch_size=vbs)
    for x, dy in batches(shape, axis, steps=3, seed=4):
        for what, a, b in zip(["y", "dx", "dgamma", "dbeta"], training_step(layer, x, dy),
                              training_step(reference, x, dy)):
            np.testing.assert_allclose(a, b, **TOL, err_msg=what)
        for stat in ("moving_mean", "moving_variance"):
            np.testing.assert_allclose(statistic(layer, stat), statistic(reference, stat),
                                       **TOL, err_msg=stat)
    # Inference takes any batch size, ghost batches or not.
    x = batches((5,) + shape[1:], axis, 1, seed=5)[0][0]
    np.testing.assert_allclose(layer(x, training=False), reference(x, training=False), **TOL)


# --------------------------------------------------- against numpy float64
NUMPY_CASES = {
    "renorm-unbiased-dense": dict(shape=(16, 5), axis=-1, renorm=True),
    "renorm-unbiased-fused": dict(shape=(6, 4, 5, 3), axis=-1, renorm=True),
    "renorm-warmup": dict(shape=(8, 3, 3, 4), axis=1, renorm=True,
                          clipping={"rmax": [1.0, 3.0, 1, 4], "rmin": [1.0, 1 / 3, 1, 4],
                                    "dmax": [0.0, 5.0, 1, 3]}),
    "ghost-unbiased": dict(shape=(12, 4, 3), axis=-1, vbs=3),
    "ghost-renorm": dict(shape=(8, 3, 3, 4), axis=-1, vbs=2, renorm=True),
    "zero-debias": dict(shape=(8, 2, 2, 3), axis=-1, zero_debias=True),
    "zero-debias-renorm-ghost": dict(shape=(12, 5), axis=-1, vbs=4, renorm=True,
                                     zero_debias=True),
}


@pytest.mark.parametrize("case", NUMPY_CASES.values(), ids=NUMPY_CASES.keys())
def test_against_numpy_float64(case):
    shape, axis = case["shape"], case["axis"]
    weights = random_weights(shape[axis], seed=6)
    clipping = case.get("clipping", CLIPPING) if case.get("renorm") else None
    kwargs = dict(renorm=case.get("renorm", False), virtual_batch_size=case.get("vbs"),
                  zero_debias=case.get("zero_debias", False))
    if kwargs["renorm"]:
        kwargs.update(renorm_clipping=clipping, renorm_momentum=RENORM_MOMENTUM)
    layer = ours(shape, axis, weights, **kwargs)
    reference = NumpyLayer(weights, axis, kwargs["renorm"], clipping, case.get("vbs"),
                           zero_debias=kwargs["zero_debias"])
    step = tf.function(lambda x: layer(x, training=True))
    for i, (x, _) in enumerate(batches(shape, axis, steps=5, seed=7)):
        np.testing.assert_allclose(step(x), reference.train(x), **TOL, err_msg=f"step {i}")
        np.testing.assert_allclose(statistic(layer, "moving_mean"), reference.mean, **TOL)
        np.testing.assert_allclose(statistic(layer, "moving_variance"), reference.var, **TOL)
        if kwargs["renorm"]:
            np.testing.assert_allclose(statistic(layer, "renorm_mean"), reference.renorm_mean,
                                       **TOL)
            np.testing.assert_allclose(statistic(layer, "renorm_stddev"),
                                       reference.renorm_std, **TOL)
        assert float(layer.moving_statistics_updates.numpy()) == i + 1


def test_warmup_bounds_follow_the_schedule():
    value = [1.0, 3.0, 5000, 40000]
    for step in [0, 4999, 5000, 12345, 39999, 40000, 10**6]:
        want = 1.0 + 2.0 * min(max((step - 5000) / 35000, 0), 1)
        got = float(renorm.bound_at(value, tf.constant(step, tf.float32)))
        assert got == pytest.approx(want, rel=1e-6), step
    # rmax = 1 and dmax = 0 during the warm-up: training is plain BN.
    shape = (8, 4)
    weights = random_weights(4, seed=8)
    warm = ours(shape, -1, weights, renorm=True,
                renorm_clipping={"rmax": [1.0, 3.0, 5, 10], "rmin": [1.0, 0.3, 5, 10],
                                 "dmax": [0.0, 5.0, 5, 10]})
    plain = ours(shape, -1, weights)
    for x, _ in batches(shape, 1, steps=3, seed=9):
        np.testing.assert_allclose(warm(x, training=True), plain(x, training=True), **TOL)


def test_the_warmup_schedule_reaches_the_layers_from_a_trainer_config():
    from bn_zoo.training import config as config_lib
    from bn_zoo.training import modeling

    clipping = {"rmax": (1.0, 3.0, 5000, 40000), "rmin": (1.0, 1 / 3, 5000, 40000),
                "dmax": (0.0, 5.0, 5000, 25000)}
    config = config_lib.default_config()
    config.model.name = "bn_mlp"
    config.model.kwargs = {"batch_norm_kwargs": {
        "renorm": True, "renorm_clipping": clipping, "virtual_batch_size": 10}}
    model = modeling.create_model(config)
    layers = population.batch_normalization_layers(model)
    assert layers
    for layer in layers:
        assert layer.renorm and layer.virtual_batch_size == 10
        assert layer.renorm_clipping == {k: [float(v) for v in value]
                                         for k, value in clipping.items()}


# -------------------------------------------------- population statistics
def test_population_statistics_under_ghost_batches_and_renorm():
    """Algorithm 2 under ghost batches: every ghost batch is a mini-batch B of
    m' = v·p·q values, E[x] the mean of their μ_B, Var[x] the mean of
    m'/(m'−1)·σ²_B."""
    shape, vbs = (12, 2, 2, 3), 4
    layer = ours(shape, -1, random_weights(3, seed=10), virtual_batch_size=vbs, renorm=True,
                 renorm_clipping=CLIPPING)
    data = [x for x, _ in batches(shape, -1, steps=3, seed=11)]
    before = [np.asarray(v).copy() for v in layer.weights]
    population.estimate(layer, data, num_batches=3)
    means, variances = [], []
    for x in data:
        groups = np.float64(x).reshape((vbs, shape[0] // vbs) + shape[1:])
        for j in range(shape[0] // vbs):
            g = groups[:, j].reshape(-1, 3)
            means.append(g.mean(0))
            variances.append(g.var(0, ddof=1))
    np.testing.assert_allclose(layer.population_mean, np.mean(means, 0), **TOL)
    np.testing.assert_allclose(layer.population_variance, np.mean(variances, 0), **TOL)
    for v, old in zip(layer.weights, before):  # the estimate moved nothing else
        if "population" not in v.name:
            np.testing.assert_array_equal(v, old, err_msg=v.name)


# --------------------------------------------------------- zero-debiasing
def test_zero_debias_matches_tensorflow_assign_moving_average():
    from tensorflow.python.training import moving_averages

    shape = (10, 4)
    layer = ours(shape, -1, random_weights(4, seed=12), zero_debias=True,
                 variance_correction="biased")
    data = [x for x, _ in batches(shape, -1, steps=6, seed=13)]
    graph = tf.Graph()
    with graph.as_default():
        mean = tf.compat.v1.get_variable("m", initializer=tf.zeros(4), use_resource=True)
        var = tf.compat.v1.get_variable("v", initializer=tf.ones(4), use_resource=True)
        x = tf.compat.v1.placeholder(tf.float32, shape)
        batch_mean, batch_var = tf.nn.moments(x, [0])
        updates = [moving_averages.assign_moving_average(mean, batch_mean, MOMENTUM,
                                                         zero_debias=True),
                   moving_averages.assign_moving_average(var, batch_var, MOMENTUM,
                                                         zero_debias=True)]
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            wanted = [session.run(updates, {x: batch}) for batch in data]
    for batch, (want_mean, want_var) in zip(data, wanted):
        layer(batch, training=True)
        np.testing.assert_allclose(layer.moving_mean, want_mean, **TOL)
        np.testing.assert_allclose(layer.moving_variance, want_var, **TOL)


def _absl_warnings(monkeypatch):
    messages = []
    monkeypatch.setattr(absl_logging, "warning",
                        lambda msg, *a: messages.append(msg % a if a else msg))
    monkeypatch.setattr(moving, "_warned", set())
    return messages


def test_inference_after_few_updates_is_not_silent(monkeypatch):
    """100 steps at momentum 0.99 leave the moving averages at 37%
    of their initial values. Default layers warn, once, when inference uses
    them; zero-debiased ones hold the data's statistics and do not warn."""
    from bn_zoo.data import mnist

    images, labels = mnist.load("train[:12800]")
    test_images, test_labels = mnist.load("test[:2000]")
    images, test_images = images / np.float32(255), test_images / np.float32(255)
    results = {}
    for zero_debias in (False, True):
        messages = _absl_warnings(monkeypatch)
        keras.utils.set_random_seed(0)
        model = bn_zoo.create_model("bn_mlp", seed=0,
                                    batch_norm_kwargs={"zero_debias": zero_debias})
        model.compile(keras.optimizers.SGD(0.25), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(images, labels, batch_size=128, epochs=1, verbose=0, shuffle=False)
        results[zero_debias] = model.evaluate(test_images, test_labels, verbose=0)[1]
        layers = population.batch_normalization_layers(model)
        assert all(float(l.moving_statistics_updates.numpy()) == 100 for l in layers)
        if zero_debias:
            assert messages == []
        else:
            assert len(messages) == 1, messages
            assert "only 100 training updates" in messages[0] and "37%" in messages[0]
            assert "zero_debias=True" in messages[0] and "population" in messages[0]
            population.estimate(model, [images[i:i + 128] for i in range(0, 2560, 128)],
                                num_batches=20)
            results["population"] = model.evaluate(test_images, test_labels, verbose=0)[1]
    assert results[False] < 0.6  # the moving averages have not caught up
    assert results[True] > 0.8 and results["population"] > 0.8
    assert abs(results[True] - results["population"]) < 0.03


def test_no_warning_before_training_after_loading_or_with_population(monkeypatch, tmp_path):
    messages = _absl_warnings(monkeypatch)
    x = np.random.default_rng(14).normal(size=(8, 3)).astype("float32")
    layer = BatchNormalization()
    layer(x, training=False)  # never trained
    layer(x, training=True)
    layer.inference_statistics = "population"
    layer(x, training=False)
    assert messages == []
    # A weights file written before the layer counted its updates loads, and
    # its statistics are taken as caught up.
    model = keras.Sequential([keras.Input((3,)), BatchNormalization()])
    model(x, training=True)
    path = str(tmp_path / "old.weights.h5")
    model.save_weights(path)
    with h5py.File(path, "r+") as f:
        group = next(g["vars"] for n, g in f["layers"].items() if n.startswith("batch"))
        assert sorted(group.keys()) == [str(i) for i in range(8)]
        del group["7"]
    fresh = keras.Sequential([keras.Input((3,)), BatchNormalization()])
    fresh.load_weights(path)
    for a, b in zip(fresh.weights[:7], model.weights[:7]):
        np.testing.assert_array_equal(a, b)
    assert float(fresh.layers[0].moving_statistics_updates.numpy()) == moving.UNKNOWN_UPDATES
    fresh(x, training=False)
    layer.inference_statistics = "moving"
    layer(x, training=False)  # 1 update at momentum 0.99: warns
    assert len(messages) == 1


# ------------------------------------------------------------ bad input
def test_a_virtual_batch_size_that_does_not_divide_the_batch_is_refused():
    layer = BatchNormalization(virtual_batch_size=4)
    x = np.ones((6, 3), "float32")
    with pytest.raises(ValueError, match=r"virtual_batch_size=4 must divide .* batch of 6"):
        layer(x, training=True)
    layer(x[:4] + np.arange(4)[:, None], training=True)
    before = [np.asarray(v).copy() for v in layer.weights]
    step = tf.function(lambda x: layer(x, training=True),
                       input_signature=[tf.TensorSpec((None, 3), tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="virtual_batch_size=4 must divide"):
        step(tf.constant(x))
    for v, old in zip(layer.weights, before):  # the refused step wrote nothing
        np.testing.assert_array_equal(v, old, err_msg=v.name)
    assert layer(x, training=False).shape == (6, 3)  # inference: any batch size


@pytest.mark.parametrize("kwargs,match", [
    (dict(renorm=True, renorm_clipping={"rmax": 3, "max": 1}), "invalid keys"),
    (dict(renorm=True, renorm_clipping={"dmax": -1.0}), "dmax must be >= 0"),
    (dict(renorm=True, renorm_clipping={"rmax": [1.0, 3.0, 10]}), "four numbers"),
    (dict(renorm=True, renorm_clipping={"rmax": [1.0, 3.0, 10, 5]}), "begin_step <= end_step"),
    (dict(renorm_clipping={"rmax": 3.0}), "only with `renorm=True`"),
    (dict(renorm=True, renorm_momentum=1.5), "renorm_momentum"),
    (dict(virtual_batch_size=0), "positive integer"),
    (dict(virtual_batch_size=2.0), "positive integer"),
    (dict(virtual_batch_size=2, synchronized=True), "cannot be combined"),
    (dict(zero_debias=True, momentum=1.0), "momentum < 1"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BatchNormalization(**kwargs)


@pytest.mark.parametrize("clipping", [[1, 2], [("rmax", 3.0)], "rmax", (1.0, 3.0)])
def test_a_renorm_clipping_that_is_not_a_dict_is_refused_as_keras_refuses_it(clipping):
    """Keras 3 and tf_keras refuse it with a ValueError; so does the layer,
    saying what it takes instead of failing inside dict()."""
    for reference in (keras, tf_keras):
        with pytest.raises(ValueError):
            reference.layers.BatchNormalization(renorm=True, renorm_clipping=clipping)
    with pytest.raises(ValueError, match=r"must be a dict with any of the keys 'rmin', "
                       r"'rmax', 'dmax'.*Received: renorm_clipping="):
        BatchNormalization(renorm=True, renorm_clipping=clipping)


def test_numpy_integers_are_taken_where_python_integers_are():
    """axis=np.int64(-1) as Keras 3 takes it (tf_keras refuses it), and
    virtual_batch_size likewise; stored as Python ints, so the config is JSON
    and the layer computes what the one built with Python ints computes."""
    x = np.random.default_rng(16).normal(2.0, 3.0, (8, 3, 5)).astype("float32")
    for axis in (np.int64(-1), np.int32(1)):
        ours_layer = BatchNormalization(axis=axis, virtual_batch_size=np.int64(4),
                                        variance_correction="biased")
        plain = BatchNormalization(axis=int(axis), virtual_batch_size=4,
                                   variance_correction="biased")
        config = ours_layer.get_config()
        assert type(config["axis"]) is int and type(config["virtual_batch_size"]) is int
        assert json.loads(json.dumps(config))["axis"] == int(axis)
        np.testing.assert_array_equal(ours_layer(x, training=True), plain(x, training=True))
        reference = keras.layers.BatchNormalization(axis=axis)
        np.testing.assert_allclose(
            BatchNormalization(axis=axis, variance_correction="biased")(x, training=True),
            reference(x, training=True), **TOL)


@pytest.mark.parametrize("kwargs,match", [
    (dict(axis=1.0), "single integer"),
    (dict(axis=[1]), "single integer"),
    (dict(axis=True), "single integer"),
    (dict(momentum=None), r"`momentum` must be a number in \[0, 1\].*Received: momentum=None"),
    (dict(momentum="0.9"), "Received: momentum='0.9'"),
    (dict(momentum=float("nan")), "Received: momentum=nan"),
    (dict(epsilon=None), "finite number > 0.*Received: epsilon=None"),
    (dict(epsilon=float("inf")), "Received: epsilon=inf"),
    (dict(virtual_batch_size=np.float32(2)), "positive integer"),
])
def test_arguments_of_the_wrong_type_name_what_they_take(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        BatchNormalization(**kwargs)


def test_renorm_moving_variance_differs_from_keras_by_the_initial_stddev():
    """tf_keras and Keras 3 keep the renorm moving σ in a variable of its own,
    `moving_stddev`, that starts at √(initial variance) = 1; the layer derives
    σ from `moving_variance` as √(moving_variance + ε), which starts at
    √(1 + ε). Both then average the same σ_B, so the σ differ by
    momentumᵗ·(√(1 + ε) − 1) ≈ momentumᵗ·ε/2 after t updates, and
    moving_variance = σ² − ε by 2σ·that (docs/layer.md). Fresh layers with
    default initializers, batches whose mean and scale grow step by step."""
    kwargs = dict(momentum=MOMENTUM, epsilon=EPSILON, renorm=True,
                  renorm_momentum=RENORM_MOMENTUM,
                  renorm_clipping={"rmin": 0.5, "rmax": 2.0, "dmax": 1.5})
    rng = np.random.default_rng(17)
    steps = 6
    data = [(3 * i + (1 + i) * rng.normal(size=(16, 5, 5, 3))).astype("float32")
            for i in range(steps)]
    layer = BatchNormalization(variance_correction="biased", **kwargs)
    references = {"tf_keras": tf_keras.layers.BatchNormalization(**kwargs),
                  "keras": keras.layers.BatchNormalization(**kwargs)}
    started = {name: module.layers.BatchNormalization(**kwargs)
               for name, module in (("tf_keras", tf_keras), ("keras", keras))}
    for name, reference in started.items():  # Keras' σ started where ours starts.
        reference.build(data[0].shape)
        reference.moving_stddev.assign(np.full(3, np.sqrt(1.0 + EPSILON), "float32"))
    for x in data:
        y = np.asarray(layer(x, training=True))
        for reference in [*references.values(), *started.values()]:
            np.testing.assert_allclose(y, reference(x, training=True), **TOL)
    offset = MOMENTUM**steps * (np.sqrt(1.0 + EPSILON) - 1.0)
    for name, reference in references.items():
        for stat in ("moving_mean", "renorm_mean", "renorm_stddev"):
            np.testing.assert_allclose(statistic(layer, stat), statistic(reference, stat),
                                       **TOL, err_msg=f"{name} {stat}")
        sigma = np.sqrt(statistic(reference, "moving_variance").astype(np.float64) + EPSILON)
        difference = statistic(layer, "moving_variance") - statistic(reference, "moving_variance")
        np.testing.assert_allclose(difference, 2 * sigma * offset + offset**2, rtol=0.02,
                                   err_msg=name)
        assert np.all(difference > 1e-3)  # The size: 1.2e-3 here, not within 2e-5.
        np.testing.assert_allclose(statistic(layer, "moving_variance"),
                                   statistic(started[name], "moving_variance"), **TOL,
                                   err_msg=f"{name}, σ started at √(1 + ε)")


def test_a_mask_with_virtual_batches_is_refused():
    layer = BatchNormalization(virtual_batch_size=2)
    with pytest.raises(ValueError, match="mask is not supported with `virtual_batch_size`"):
        layer(np.ones((4, 3, 2), "float32"), training=True, mask=np.ones((4, 3), bool))


# ------------------------------------------------------------ round trips
def test_config_and_keras_file_round_trip(tmp_path):
    kwargs = dict(renorm=True, renorm_clipping={"rmax": [1.0, 3.0, 2, 6], "dmax": 2.0},
                  renorm_momentum=0.7, virtual_batch_size=2, zero_debias=True)
    layer = BatchNormalization(**kwargs)
    config = layer.get_config()
    for key, value in kwargs.items():
        want = {"rmax": [1.0, 3.0, 2.0, 6.0], "dmax": 2.0} if key == "renorm_clipping" else value
        assert config[key] == want, key
    assert BatchNormalization.from_config(config).get_config() == config
    model = keras.Sequential([keras.Input((4, 3)), BatchNormalization(**kwargs)])
    data = [x for x, _ in batches((6, 4, 3), -1, steps=3, seed=15)]
    model(data[0], training=True)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(a, b, err_msg=a.name)
    for x in data[1:]:  # the schedule and the averages continue alike
        np.testing.assert_allclose(loaded(x, training=True), model(x, training=True), **TOL)
    np.testing.assert_allclose(loaded(data[0]), model(data[0]), **TOL)
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_allclose(a, b, **TOL, err_msg=a.name)
