"""Serving speed of the folded against the unfolded SavedModel.

Exports BN-Inception (224×224×3, 1000 classes) and the BN MLP twice each,
with every BN folded into the layer before it (Algorithm 2, step 11; the
default of `python -m trainers.export`) and with the BN layers kept, loads
the SavedModels with `tf.saved_model.load` and calls their `serving_default`
signature. Prints, from one run, the median latency at batch 1 and the
throughput at batch 32 of both, with the ratio folded/unfolded. Target
(issue 6): folded latency ≤ 0.85× unfolded for BN-Inception.

Folded and unfolded calls alternate, so that a change in machine load hits
both alike.

    python benchmarks/export_latency.py [--repeats 30] [--throughput_repeats 5]
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bn_zoo import models, population  # noqa: E402
from bn_zoo.export import export_model  # noqa: E402

MODELS = ("bn_inception", "bn_mlp")


def build(name, seed=0):
    """The registered model, with BN statistics from two random batches (so
    that the numbers flowing through are those of a working network)."""
    model = models.create_model(name, weights=None)
    info = models.model_info(name)
    rng = np.random.default_rng(seed)
    batches = [
        models.preprocess_input(
            rng.integers(0, 256, (8, *info.default_input_shape)).astype("float32"),
            info.preprocessing,
        )
        for _ in range(2)
    ]
    population.estimate(model, batches, num_batches=2)
    return model, info


def time_calls(functions, images, repeats, warmup):
    """(median, min) seconds per call of each function, calls interleaved."""
    for _ in range(warmup):
        for fn in functions:
            fn(images=images)["probabilities"].numpy()
    times = [[] for _ in functions]
    for _ in range(repeats):
        for fn, record in zip(functions, times):
            start = time.perf_counter()
            fn(images=images)["probabilities"].numpy()
            record.append(time.perf_counter() - start)
    return [(statistics.median(t), min(t)) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="Timed batch-1 calls.")
    parser.add_argument("--throughput_repeats", type=int, default=5,
                        help="Timed batch-32 calls.")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as root:  # Exports are deleted at the end.
        for name in args.models:
            model, info = build(name)
            functions = []
            for fold in (False, True):
                start = time.perf_counter()
                path = export_model(model, os.path.join(root, f"{name}_{fold}"),
                                    info.preprocessing, fold_batch_norm=fold)
                seconds = time.perf_counter() - start
                print(f"exported {name} {'folded' if fold else 'unfolded'} in {seconds:.1f} s")
                functions.append(tf.saved_model.load(path).signatures["serving_default"])
            rng = np.random.default_rng(1)
            one = tf.constant(rng.uniform(0, 255, (1, *info.default_input_shape)), tf.float32)
            many = tf.constant(rng.uniform(0, 255, (32, *info.default_input_shape)), tf.float32)
            scale = 10 if name == "bn_mlp" else 1  # The MLP is fast: more calls.
            latency = time_calls(functions, one, args.repeats * scale, warmup=5)
            batch = time_calls(functions, many, args.throughput_repeats * scale, warmup=2)
            (median_u, best_u), (median_f, best_f) = latency
            rows.append((name, "latency, batch 1, median (ms)", 1e3 * median_u, 1e3 * median_f))
            rows.append((name, "latency, batch 1, best (ms)", 1e3 * best_u, 1e3 * best_f))
            (median_u, _), (median_f, _) = batch
            rows.append((name, "throughput, batch 32 (img/s)", 32 / median_u, 32 / median_f))

    print()
    header = f"{'model':<14}{'measure':<32}{'unfolded':>12}{'folded':>12}"
    print(header + f"{'folded time/unfolded':>24}")
    for name, measure, unfolded, folded in rows:
        ratio = unfolded / folded if "img/s" in measure else folded / unfolded
        print(f"{name:<14}{measure:<32}{unfolded:>12.2f}{folded:>12.2f}{ratio:>24.3f}")
    for name, measure, unfolded, folded in rows:
        if name == "bn_inception" and "median" in measure:
            ratio = folded / unfolded
            print(f"\nBN-Inception median batch-1 latency, folded/unfolded: {ratio:.3f} "
                  f"(target <= 0.85: {'met' if ratio <= 0.85 else 'NOT met'})")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs (other processes inflate the medians)")


if __name__ == "__main__":
    main()
