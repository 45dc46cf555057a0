"""One worker of tests/test_sync_bn_exact.py's MultiWorkerMirroredStrategy
case: `python tests/sync_bn_worker.py CASE.npz OUT.npz` with TF_CONFIG set.

Reads the global batch, the projection P and the layer's weights from CASE,
takes its own rows (worker i gets `parts[i]` examples, uneven), runs one
synchronized training step of `bn_zoo.layers.BatchNormalization` on
L = Σ y·P, and writes y, ∂L/∂x for its rows, the all-reduced ∂L/∂γ and
∂L/∂β, and its copy of the moving statistics to OUT.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bn_zoo.layers import BatchNormalization  # noqa: E402


def main(case_path, out_path):
    case = np.load(case_path)
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    bounds = np.concatenate([[0], np.cumsum(case["parts"])])
    rows = slice(bounds[index], bounds[index + 1])
    x, projection = case["x"][rows], case["projection"][rows]
    axis = int(case["axis"])

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        layer = BatchNormalization(
            axis=axis, momentum=float(case["momentum"]), epsilon=float(case["epsilon"]),
            synchronized=True,
        )
        layer.build((None,) + case["x"].shape[1:])
        for variable, value in zip(
            [layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance],
            case["weights"],
        ):
            variable.assign(value)

    def replica_fn(x_r, p_r):
        with tf.GradientTape() as tape:
            tape.watch(x_r)
            y_r = layer(x_r, training=True)
            loss = tf.reduce_sum(y_r * p_r)
        dx, dgamma, dbeta = tape.gradient(loss, [x_r, layer.gamma.value, layer.beta.value])
        context = tf.distribute.get_replica_context()
        dgamma, dbeta = context.all_reduce(tf.distribute.ReduceOp.SUM, [dgamma, dbeta])
        return y_r, dx, dgamma, dbeta

    step = tf.function(lambda a, b: strategy.run(replica_fn, args=(a, b)))
    y, dx, dgamma, dbeta = (
        strategy.experimental_local_results(t)[0].numpy()
        for t in step(tf.constant(x), tf.constant(projection))
    )
    copies = lambda v: strategy.experimental_local_results(v.value)[0].numpy()  # noqa: E731
    np.savez(
        out_path, y=y, dx=dx, dgamma=dgamma, dbeta=dbeta,
        moving_mean=copies(layer.moving_mean), moving_variance=copies(layer.moving_variance),
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
