"""BN-Inception training speed: bn_zoo's BN layer against Keras' BN layer.

Builds BN-Inception twice, once as registered (bn_zoo's BatchNormalization,
fused kernel on 4-D inputs) and once with every BN swapped for
`keras.layers.BatchNormalization` (same axis, momentum and ε), and times SGD
training steps on batches of 32 at 224×224, in float32 and in mixed_bfloat16.
Also trains each build on one fixed batch for a few steps and prints the loss
before and after, to show each precision trains.

Targets: ours ≥ 1.1× the Keras-BN build at the same precision;
mixed_bfloat16 ≥ 1.4× our float32 speed. The latter needs a CPU with native
bfloat16 (AVX512_BF16 or AMX); elsewhere TensorFlow emulates bfloat16 and
mixed_bfloat16 is slower than float32. The script prints which this CPU is.

    python benchmarks/inception_speed.py [--steps 8] [--batch 32] [--size 224]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bn_zoo  # noqa: E402
from bn_zoo.layers import BatchNormalization  # noqa: E402
from bn_zoo.training.strategy import native_bfloat16_flags  # noqa: E402
import machine  # noqa: E402  (benchmarks/, the script's directory)


def with_keras_batch_norm(model):
    """The same architecture with `keras.layers.BatchNormalization` layers."""

    def clone(layer):
        if isinstance(layer, BatchNormalization):
            return keras.layers.BatchNormalization(
                axis=layer.axis,
                momentum=layer.momentum,
                epsilon=layer.epsilon,
                center=layer.center,
                scale=layer.scale,
                name=layer.name,
            )
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(model, clone_function=clone)


def train_step_fn(model, jit_compile):
    optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit_compile)
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = loss_fn(labels, tf.cast(logits, tf.float32))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def measure(models, images, labels, steps, jit_compile):
    """{label: (img/s from the median step, first loss, last loss)}.

    The builds' steps alternate, so that a change in machine load hits all
    builds alike."""
    step_fns = {label: train_step_fn(model, jit_compile) for label, model in models.items()}
    first = {label: float(step(images, labels)) for label, step in step_fns.items()}
    for step in step_fns.values():  # trace done above; one more warm-up step
        step(images, labels)
    times = {label: [] for label in step_fns}
    last = {}
    for _ in range(steps):
        for label, step in step_fns.items():
            start = time.perf_counter()
            last[label] = float(step(images, labels))
            times[label].append(time.perf_counter() - start)
    return {
        label: (images.shape[0] / statistics.median(times[label]), first[label], last[label])
        for label in step_fns
    }


def bfloat16_support():
    """How this CPU runs bfloat16, from its flags (Linux)."""
    native = native_bfloat16_flags()
    if native is None:
        return "unknown (no /proc/cpuinfo)"
    if native:
        return "native (" + ", ".join(native) + ")"
    return ("none: bfloat16 is emulated, so mixed_bfloat16 is expected to be "
            "slower than float32 here")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--xla", action="store_true", help="also time jit_compile")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = tf.constant(
        rng.uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype("float32")
    )
    labels = tf.constant(rng.integers(0, 1000, args.batch))
    print(machine.describe())
    print(f"BN-Inception, batch {args.batch}, "
          f"{args.size}x{args.size}, {args.steps} timed steps each (median; builds "
          f"alternate; loss on one fixed batch)")
    print(f"CPU bfloat16 support: {bfloat16_support()}\n")
    print(f"{'precision':16s} {'BN layer':8s} {'xla':4s} {'img/s':>7s} "
          f"{'loss first':>10s} {'loss last':>10s}")
    results = {}
    for precision in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(precision)
        keras.utils.set_random_seed(0)
        ours = bn_zoo.create_model(
            "bn_inception", input_shape=(args.size, args.size, 3),
            classifier_activation=None,
        )
        builds = {"bn_zoo": ours, "keras": with_keras_batch_norm(ours)}
        for xla in (False, True) if args.xla else (False,):
            measured = measure(builds, images, labels, args.steps, xla)
            for label, (speed, first, last) in measured.items():
                results[(precision, label, xla)] = speed
                print(f"{precision:16s} {label:8s} {str(xla):4s} {speed:7.2f} "
                      f"{first:10.3f} {last:10.3f}", flush=True)
    keras.mixed_precision.set_global_policy("float32")

    print()
    for precision in ("float32", "mixed_bfloat16"):
        ratio = results[(precision, "bn_zoo", False)] / results[(precision, "keras", False)]
        print(f"{precision}: bn_zoo / keras BN = {ratio:.2f}x (target >= 1.1x)")
    ratio = results[("mixed_bfloat16", "bn_zoo", False)] / results[("float32", "bn_zoo", False)]
    print(f"bn_zoo mixed_bfloat16 / float32 = {ratio:.2f}x (target >= 1.4x)")
    print(machine.load_average())


if __name__ == "__main__":
    main()
