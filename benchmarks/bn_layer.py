"""Speed of bn_zoo's BatchNormalization against Keras' layer and the fused kernel.

Prints, from one run, the median time of a training step (forward, backward
and, for the layers, the moving-average update) and of an inference step, for:
our layer with both variance corrections, `keras.layers.BatchNormalization`,
and `tf.raw_ops.FusedBatchNormV3` called directly, then the ratios the
targets are stated in: on 4-D shapes ours ≤ 1.05× the fused kernel in
training and in inference; on the dense shape ours ≤ 1.0× Keras in training.
In training the kernel alone is inexact far from zero; the layer runs it on
its input shifted by one of each channel's values, one more elementwise pass
(see docs/layer.md for what that costs and the formulations measured). Then
our layer with `renorm=True` and with
`virtual_batch_size` = batch/4 beside tf_keras' layer with the same
arguments (tf_keras is a test dependency; the rows are left out without it),
with the ratio of the training steps. The candidates' steps are timed in turns, one call of each
per round, so that a change in the machine's load reaches all of them;
shapes under 1e5 elements get 10× the rounds.

    python benchmarks/bn_layer.py [--repeats 30] [--shapes 32,56,56,192 60,100]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import machine  # noqa: E402  (benchmarks/, the script's directory)
from bn_zoo.layers import BatchNormalization  # noqa: E402

DEFAULT_SHAPES = ["32,56,56,192", "32,28,28,576", "60,100"]


def layer_steps(layer, x, dy):
    layer.build(x.shape)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return tape.gradient(y, [x] + layer.trainable_weights, output_gradients=dy)

    @tf.function
    def inference_step():
        return layer(x, training=False)

    return train_step, inference_step


def fused_steps(x, dy):
    channels = x.shape[-1]
    gamma = tf.Variable(tf.ones([channels]))
    beta = tf.Variable(tf.zeros([channels]))
    mean = tf.zeros([channels])
    variance = tf.ones([channels])
    x4 = tf.reshape(x, [-1, 1, 1, channels]) if x.shape.rank == 2 else x

    def kernel(inputs, training):
        return tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=gamma,
            offset=beta,
            mean=tf.zeros([0]) if training else mean,
            variance=tf.zeros([0]) if training else variance,
            epsilon=1e-3,
            is_training=training,
        )[0]

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            tape.watch(x4)
            y = kernel(x4, True)
        return tape.gradient(
            y, [x4, gamma, beta], output_gradients=tf.reshape(dy, x4.shape)
        )

    @tf.function
    def inference_step():
        return kernel(x4, False)

    return train_step, inference_step


RENORM = dict(renorm=True, renorm_clipping={"rmax": 3.0, "rmin": 1 / 3, "dmax": 5.0})


def renorm_and_ghost_candidates(shape, x, dy):
    """Ours and tf_keras' layer with renorm and with ghost batches of a
    quarter of the batch (variance_correction="biased", as tf_keras)."""
    try:
        import tf_keras
    except ImportError:
        return {}
    ghost = dict(virtual_batch_size=shape[0] // 4)
    candidates = {}
    for label, kwargs in (("renorm", RENORM), (f"ghost v={shape[0] // 4}", ghost)):
        candidates[f"ours {label}"] = layer_steps(
            BatchNormalization(variance_correction="biased", **kwargs), x, dy)
        candidates[f"tf_keras {label}"] = layer_steps(
            tf_keras.layers.BatchNormalization(**kwargs), x, dy)
    return candidates


def interleaved_median_ms(steps, repeats):
    """Median milliseconds of each step, timed in turns (one call of each per
    round) so that changes in the machine's load reach every candidate alike."""
    for step in steps.values():
        for _ in range(3):
            tf.nest.map_structure(lambda t: t.numpy(), step())
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), step())
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def benchmark(shape, repeats):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=shape).astype("float32"))
    dy = tf.constant(rng.normal(size=shape).astype("float32"))
    candidates = {
        "ours (unbiased)": layer_steps(BatchNormalization(), x, dy),
        "ours (biased)": layer_steps(
            BatchNormalization(variance_correction="biased"), x, dy
        ),
        "keras.layers.BatchNormalization": layer_steps(
            keras.layers.BatchNormalization(), x, dy
        ),
        "FusedBatchNormV3 (direct)": fused_steps(x, dy),
    }
    candidates.update(renorm_and_ghost_candidates(shape, x, dy))
    if np.prod(shape) < 1e5:
        repeats *= 10  # sub-millisecond steps: more rounds for a stable median
    train = interleaved_median_ms({n: c[0] for n, c in candidates.items()}, repeats)
    infer = interleaved_median_ms({n: c[1] for n, c in candidates.items()}, repeats)
    return {name: (train[name], infer[name]) for name in candidates}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES)
    args = parser.parse_args()
    print(f"{machine.describe()}\nmedian of {args.repeats} steps\n")
    for text in args.shapes:
        shape = tuple(int(d) for d in text.split(","))
        results = benchmark(shape, args.repeats)
        print(f"shape {shape}")
        print(f"  {'':34s} {'train ms':>9s} {'infer ms':>9s}")
        for name, (train, infer) in results.items():
            print(f"  {name:34s} {train:9.2f} {infer:9.2f}")
        fused = results["FusedBatchNormV3 (direct)"]
        keras_ = results["keras.layers.BatchNormalization"]
        for name in ("ours (unbiased)", "ours (biased)"):
            ours = results[name]
            print(
                f"  {name}: train {ours[0] / fused[0]:.2f}x fused, "
                f"{ours[0] / keras_[0]:.2f}x keras; "
                f"infer {ours[1] / fused[1]:.2f}x fused, {ours[1] / keras_[1]:.2f}x keras"
            )
        for name in results:
            if name.startswith("ours ") and f"tf_keras {name[5:]}" in results:
                ours, theirs = results[name], results[f"tf_keras {name[5:]}"]
                print(f"  {name}: train {ours[0] / theirs[0]:.2f}x tf_keras, "
                      f"infer {ours[1] / theirs[1]:.2f}x tf_keras")
        if len(shape) == 4:
            print("  targets: training ≤ 1.05x fused, inference ≤ 1.05x fused\n")
        else:
            print("  target: training ≤ 1.0x keras\n")
    print(machine.load_average())


if __name__ == "__main__":
    main()
