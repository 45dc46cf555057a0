"""Speed of LocalResponseNormalization's keras.ops formula against TensorFlow's kernel.

`bn_zoo.models.LocalResponseNormalization` calls
`tf.nn.local_response_normalization` on the TensorFlow backend and
`bn_zoo.models.lrn.local_response_normalization` (the same formula written
with keras.ops) on JAX and PyTorch. This prints, from one run on the
TensorFlow backend, the median time of a forward and backward step of each
inside `tf.function`, at GoogLeNet's LRN shapes (after pool1 and after conv2,
batch 32), and the ratio keras.ops / kernel: why the layer keeps the kernel on
TensorFlow. The two are timed in turns, one call of each per round.

    python benchmarks/lrn.py [--repeats 20]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import machine  # noqa: E402  (benchmarks/, the script's directory)
from bn_zoo.models import lrn  # noqa: E402

SHAPES = [(32, 56, 56, 64), (32, 56, 56, 192)]
KWARGS = dict(depth_radius=2, bias=1.0, alpha=2e-5, beta=0.75)


def step(fn, x):
    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x, **KWARGS)
        return tape.gradient(y, x)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(machine.describe())
    print(f"{'shape':>20}  {'keras.ops ms':>12}  {'tf.nn kernel ms':>15}  {'ratio':>6}")
    for shape in SHAPES:
        x = tf.constant(np.random.default_rng(0).normal(0, 1, shape), tf.float32)
        candidates = [step(lrn.local_response_normalization, x),
                      step(tf.nn.local_response_normalization, x)]
        times = [[], []]
        for fn in candidates:
            fn()  # trace
        for _ in range(args.repeats):
            for fn, record in zip(candidates, times):
                start = time.perf_counter()
                fn().numpy()
                record.append(time.perf_counter() - start)
        ours, kernel = (statistics.median(t) * 1e3 for t in times)
        print(f"{str(shape):>20}  {ours:12.1f}  {kernel:15.1f}  {ours / kernel:5.2f}x")
    print(machine.load_average())


if __name__ == "__main__":
    main()
