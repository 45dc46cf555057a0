"""Speed of `create_model(name, weights=path)` against Keras' own loading.

Prints, from one run, the median wall time of

- ours: `bn_zoo.create_model(name, weights=path)`: build, check the file
  against the model (all or nothing), load;
- reference: `bn_zoo.create_model(name, weights=None)` then Keras'
  `model.load_weights(path)` (no check: a file that does not fit fails
  half-way or loads silently);

and the ratio ours / reference (the target: at most 1.1). Both are timed in
turns, one call of each per round, so that a change in the machine's load
reaches both. The file is BN-Inception's (11.3M parameters, 624 variables)
saved with random values; `--model=bn_mlp` times the MNIST network.

    python benchmarks/weights_load.py [--model bn_inception] [--repeats 5]

The figures carry their machine: CPU model, instruction set, oneDNN state,
load average, and the bn_zoo version and commit.
"""

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import bn_zoo  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine():
    """One line on the machine and the code that produced the figures."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (TensorFlow's default)")
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "bn_zoo"],
                               capture_output=True, text=True).stdout.strip()
        commit += " + uncommitted changes" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown commit"
    return (f"{model} ({isa}, {os.cpu_count()} cores), TF_ENABLE_ONEDNN_OPTS={onednn}, "
            f"bn_zoo {bn_zoo.__version__} ({commit})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bn_inception")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    source = bn_zoo.create_model(args.model)
    rng = np.random.default_rng(0)
    for variable in source.weights:
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype(variable.dtype))
    directory = tempfile.mkdtemp(prefix="bn_zoo_weights_load_")
    path = os.path.join(directory, f"{args.model}.weights.h5")
    source.save_weights(path)
    del source

    def ours():
        return bn_zoo.create_model(args.model, weights=path)

    def reference():
        model = bn_zoo.create_model(args.model, weights=None)
        model.load_weights(path)
        return model

    # Both once before timing (imports, first traces), and a check that they
    # load the same values.
    for a, b in zip(ours().weights, reference().weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    times = {"ours": [], "reference": []}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for name, run in (("ours", ours), ("reference", reference)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    load.append(os.getloadavg()[0])
    ours_s, reference_s = (statistics.median(times[k]) for k in ("ours", "reference"))
    print(f"{'':>58}{'median s':>10}")
    print(f"{'ours: create_model(' + args.model + ', weights=path)':<58}{ours_s:>10.3f}")
    print(f"{'reference: create_model(weights=None) + load_weights':<58}{reference_s:>10.3f}")
    print(f"ratio ours / reference: {ours_s / reference_s:.2f} (target <= 1.1); "
          f"{args.repeats} rounds; load average {load[0]:.1f} before, {load[1]:.1f} after")
    os.remove(path)
    os.rmdir(directory)


if __name__ == "__main__":
    main()
