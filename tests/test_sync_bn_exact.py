"""Synchronized BN is exact: outputs, gradients and moving
statistics equal float64 numpy on the concatenated batch to 1e-5, with
|mean|/std up to 1e4 and uneven per-replica batches, under MirroredStrategy
(2 logical CPUs, tests/conftest.py) and MultiWorkerMirroredStrategy (2 local
processes, tests/sync_bn_worker.py). The reference gradient is the closed
form of ∂(Σ y·P)/∂x for BN over the global batch, in float64."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import local_cluster
from bn_zoo.layers import BatchNormalization
from commands import ROOT, TESTS
EPSILON, MOMENTUM = 1e-3, 0.9
PARTS = [3, 5]  # uneven per-replica batches
# Per-channel mean/std, up to 1e4, and std, across the channels of a case.
RATIOS = [0.0, 30.0, -1e3, 1e4, 2.5e3, -1e4]


def make_case(shape, axis, seed):
    rng = np.random.default_rng(seed)
    channels = shape[axis]
    ratio = np.resize(RATIOS, channels)
    std = rng.uniform(0.05, 3.0, channels)
    last = np.moveaxis(rng.normal(size=shape), axis, -1) * std + ratio * std
    # Replica 0's examples sit 2σ higher: the replicas' means differ.
    last[: PARTS[0]] += 2.0 * std
    x = np.moveaxis(last, -1, axis).astype("float32")
    weights = [
        rng.uniform(0.5, 2.0, channels),
        rng.normal(size=channels),
        ratio * std + rng.normal(size=channels),  # moving mean, far from zero too
        rng.uniform(0.5, 2.0, channels) * std**2,
    ]
    projection = rng.normal(size=shape).astype("float32")
    return [w.astype("float32") for w in weights], x, projection


def reference(x, projection, weights, axis, mask=None):
    """y, ∂L/∂x, ∂L/∂γ, ∂L/∂β and the moving statistics after one step, in
    float64, for L = Σ y·P with BN over the whole batch (masked positions
    out of the statistics)."""
    x, p = x.astype(np.float64), projection.astype(np.float64)
    gamma, beta, moving_mean, moving_variance = (w.astype(np.float64) for w in weights)
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    shape = [1] * x.ndim
    shape[axis] = -1
    w = np.ones_like(x) if mask is None else np.broadcast_to(
        np.expand_dims(mask.astype(np.float64), axis), x.shape)
    count = w.sum(axes)[0]
    mean = (w * x).sum(axes) / count
    variance = (w * (x - mean.reshape(shape)) ** 2).sum(axes) / count
    inverse = 1.0 / np.sqrt(variance + EPSILON)
    xhat = (x - mean.reshape(shape)) * inverse.reshape(shape)
    y = gamma.reshape(shape) * xhat + beta.reshape(shape)
    dbeta, dgamma = p.sum(axes), (p * xhat).sum(axes)
    dx = (gamma * inverse).reshape(shape) * (
        p - w * (dbeta.reshape(shape) + xhat * dgamma.reshape(shape)) / count)
    moving = (MOMENTUM * moving_mean + (1 - MOMENTUM) * mean,
              MOMENTUM * moving_variance + (1 - MOMENTUM) * variance * count / (count - 1))
    return y, dx, dgamma, dbeta, moving


def assert_close(got, want, name):
    """1e-5 relative, with the absolute floor 1e-5 of the largest value."""
    want = np.asarray(want, np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max(),
                               err_msg=name)


def check(got, want):
    for name, g, w in zip(["y", "dx", "dgamma", "dbeta", "moving_mean", "moving_variance"],
                          got, list(want[:4]) + list(want[4])):
        assert_close(g, w, name)


CASES = [  # (shape, axis, masked): fused NHWC, NCHW, NCDHW, generic dense, masked
    ((8, 4, 4, 3), -1, False),
    ((8, 3, 4, 4), 1, False),
    ((8, 3, 2, 3, 2), 1, False),
    ((8, 6), -1, False),
    ((8, 5, 3), -1, True),
]


# The channels-first cases run the backward kernel in channels-last: without
# oneDNN (TF_ENABLE_ONEDNN_OPTS=0, or a CPU without AVX-512), and for NCDHW
# with it, TensorFlow's CPU kernel takes no other layout.
@pytest.mark.parametrize("shape,axis,masked", CASES,
                         ids=["nhwc-fused", "nchw-fused", "ncdhw-fused", "dense", "masked"])
def test_mirrored_equals_float64_on_the_global_batch(mirrored_strategy, shape, axis, masked):
    strategy = mirrored_strategy
    weights, x, projection = make_case(shape, axis, seed=len(shape) + axis + 13 * masked)
    mask = None
    if masked:
        mask = np.random.default_rng(7).uniform(size=shape[:-1]) > 0.3
        mask[:, 0] = True  # every example keeps its shift position
    with strategy.scope():
        layer = BatchNormalization(axis=axis, momentum=MOMENTUM, epsilon=EPSILON,
                                   synchronized=True)
        layer.build((None,) + shape[1:])
        for variable, value in zip(
                [layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance], weights):
            variable.assign(value)
    splits = np.cumsum(PARTS)[:-1]
    parts = [np.split(a, splits) if a is not None else [None] * 2
             for a in (x, projection, mask)]
    inputs = strategy.experimental_distribute_values_from_function(
        lambda ctx: tuple(tf.constant(part[ctx.replica_id_in_sync_group])
                          for part in parts if part[0] is not None))

    def replica_fn(x_r, p_r, *mask_r):
        with tf.GradientTape() as tape:
            tape.watch(x_r)
            y_r = layer(x_r, training=True, mask=mask_r[0] if mask_r else None)
            loss = tf.reduce_sum(y_r * p_r)
        dx, dgamma, dbeta = tape.gradient(loss, [x_r, layer.gamma.value, layer.beta.value])
        return y_r, dx, dgamma, dbeta

    y, dx, dgamma, dbeta = tf.function(lambda v: strategy.run(replica_fn, args=v))(inputs)
    local = strategy.experimental_local_results
    total = lambda t: sum(r.numpy().astype(np.float64) for r in local(t))  # noqa: E731
    got = [np.concatenate([r.numpy() for r in local(y)]),
           np.concatenate([r.numpy() for r in local(dx)]), total(dgamma), total(dbeta)]
    want = reference(x, projection, weights, axis, mask)
    # Every replica's copy holds the same global statistics, bit for bit.
    for variable in (layer.moving_mean, layer.moving_variance):
        first, second = (v.numpy() for v in local(variable.value))
        np.testing.assert_array_equal(first, second)
        got.append(first)
    check(got, want)


def test_multi_worker_equals_float64_on_the_global_batch(tmp_path):
    shape, axis = (8, 4, 4, 3), -1
    weights, x, projection = make_case(shape, axis, seed=5)
    case = str(tmp_path / "case.npz")
    np.savez(case, x=x, projection=projection, weights=np.stack(weights), axis=axis,
             parts=PARTS, momentum=MOMENTUM, epsilon=EPSILON)
    workers = []
    for index, env in enumerate(local_cluster.worker_environments(2, TF_CPP_MIN_LOG_LEVEL="3")):
        workers.append(subprocess.Popen(
            [sys.executable, os.path.join(TESTS, "sync_bn_worker.py"), case,
             str(tmp_path / f"out_{index}.npz")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs[0][-3000:] + logs[1][-3000:]

    outs = [np.load(tmp_path / f"out_{index}.npz") for index in range(2)]
    y, dx, dgamma, dbeta, (mean, variance) = reference(x, projection, weights, axis)
    bounds = np.concatenate([[0], np.cumsum(PARTS)])
    for index, out in enumerate(outs):
        rows = slice(bounds[index], bounds[index + 1])
        check([out["y"], out["dx"], out["dgamma"], out["dbeta"], out["moving_mean"],
               out["moving_variance"]], (y[rows], dx[rows], dgamma, dbeta, (mean, variance)))
    # The two workers hold the same bits of the moving statistics.
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_array_equal(outs[0][name], outs[1][name])
