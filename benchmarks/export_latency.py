"""Serving speed of the folded against the unfolded SavedModel, and of the
ONNX and LiteRT files.

Exports BN-Inception (224×224×3, 1000 classes) and the BN MLP four ways as a
SavedModel: with every BN folded into the layer before it (Algorithm 2, step
11) or with the BN layers kept, and with the weights stored as graph
constants or as variables. The default of `python -m trainers.export` is
folded with constant weights. Loads each SavedModel with
`tf.saved_model.load` and calls its `serving_default` signature. Then the
folded network as ONNX (run by onnxruntime), LiteRT float32 and LiteRT int8
(run by ai_edge_litert with as many threads as CPUs; int8 calibrated on 10
batches of MNIST training digits for the MLP, of random pixels for
BN-Inception, as no ImageNet is at hand: the latency does not depend on
it). Prints, from one run, the median latency at batch 1, the throughput at
batch 32 and the size of every export, and the ratios:

- default export / unfolded with variables (the graph as Keras runs it):
  the target, folded ≤ 0.85× unfolded latency for BN-Inception;
- folded / unfolded, both with variables: what folding alone buys;
- folded / unfolded, both with constant weights: with the weights known,
  TensorFlow's graph optimizer folds the BN ops itself, so this is ~1;
- ONNX, LiteRT float32 and LiteRT int8 / the default SavedModel.

Calls to the exports alternate, so that a change in machine load hits all
alike.

    python benchmarks/export_latency.py [--repeats 30] [--throughput_repeats 5]

The ONNX and LiteRT rows need the export extra (pip install 'bn_zoo[export]').
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
from bn_zoo.export import FILENAMES, calibration, export_model  # noqa: E402
import machine  # noqa: E402  (benchmarks/, the script's directory)

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
    inputs = (images, tf.constant(images))
    for _ in range(warmup):
        for fn in functions:
            fn(*inputs)
    times = [[] for _ in functions]
    for _ in range(repeats):
        for fn, record in zip(functions, times):
            start = time.perf_counter()
            fn(*inputs)
            record.append(time.perf_counter() - start)
    return [(statistics.median(t), min(t)) for t in times]


# (label, export_model options); index 3 is the default export.
EXPORTS = (
    ("unfolded, variables", dict(fold_batch_norm=False, constant_weights=False)),
    ("folded, variables", dict(fold_batch_norm=True, constant_weights=False)),
    ("unfolded, constants", dict(fold_batch_norm=False, constant_weights=True)),
    ("folded, constants", dict(fold_batch_norm=True, constant_weights=True)),
    ("ONNX", dict(format="onnx")),
    ("LiteRT float32", dict(format="litert")),
    ("LiteRT int8", dict(format="litert", quantize="int8")),
)
RATIOS = (  # (description, numerator export, denominator export)
    ("default export / unfolded with variables", 3, 0),
    ("folding alone (both with variables)", 1, 0),
    ("folding with constant weights on both", 3, 2),
    ("ONNX (onnxruntime) / default SavedModel", 4, 3),
    ("LiteRT float32 / default SavedModel", 5, 3),
    ("LiteRT int8 / default SavedModel", 6, 3),
)
CALIBRATION_STEPS = 10


def load(path, options):
    """`fn(array, tensor)` -> probabilities of an export, in its runtime (the
    SavedModel takes the tensor, the others the numpy array of the same
    images, so that no call pays for a conversion)."""
    export_format = options.get("format", "saved_model")
    if export_format == "saved_model":
        function = tf.saved_model.load(path).signatures["serving_default"]
        return lambda array, tensor: function(images=tensor)["probabilities"].numpy()
    file = os.path.join(path, FILENAMES[export_format])
    if export_format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(file, providers=["CPUExecutionProvider"])
        return lambda array, tensor: session.run(["probabilities"], {"images": array})[0]
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=file, num_threads=os.cpu_count()).get_signature_runner()
    return lambda array, tensor: runner(images=array)["probabilities"]


def size_of(path):
    """Bytes of an export: its file, or every file of the SavedModel."""
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def calibration_batches(name, info):
    if info.family == "mlp":
        return calibration.mnist_batches(CALIBRATION_STEPS)
    rng = np.random.default_rng(2)
    return lambda: (rng.uniform(0, 255, (8, *info.default_input_shape)).astype("float32")
                    for _ in range(CALIBRATION_STEPS))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="Timed batch-1 calls.")
    parser.add_argument("--throughput_repeats", type=int, default=5,
                        help="Timed batch-32 calls.")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    args = parser.parse_args()
    print(machine.describe())

    results = {}  # name -> (median batch-1 latencies, best ones, batch-32 img/s, MB)
    with tempfile.TemporaryDirectory() as root:  # Exports are deleted at the end.
        for name in args.models:
            model, info = build(name)
            functions, sizes = [], []
            for i, (label, options) in enumerate(EXPORTS):
                if options.get("quantize"):
                    options = dict(options, calibration_batches=calibration_batches(name, info))
                start = time.perf_counter()
                path = export_model(model, os.path.join(root, f"{name}_{i}"),
                                    info.preprocessing, **options)
                seconds = time.perf_counter() - start
                print(f"exported {name} {label} in {seconds:.1f} s", flush=True)
                functions.append(load(path, options))
                sizes.append(size_of(path) / 1e6)
            rng = np.random.default_rng(1)
            one = rng.uniform(0, 255, (1, *info.default_input_shape)).astype("float32")
            many = rng.uniform(0, 255, (32, *info.default_input_shape)).astype("float32")
            scale = 10 if name == "bn_mlp" else 1  # The MLP is fast: more calls.
            latency = time_calls(functions, one, args.repeats * scale, warmup=5)
            batch = time_calls(functions, many, args.throughput_repeats * scale, warmup=2)
            results[name] = (
                [1e3 * median for median, _ in latency],
                [1e3 * best for _, best in latency],
                [32 / median for median, _ in batch],
                sizes,
            )

    print()
    print(f"{'model':<14}{'measure':<32}" + "".join(f"{label:>22}" for label, _ in EXPORTS))
    for name, rows in results.items():
        for measure, values in zip(
            ("latency, batch 1, median (ms)", "latency, batch 1, best (ms)",
             "throughput, batch 32 (img/s)", "size (MB)"), rows,
        ):
            print(f"{name:<14}{measure:<32}" + "".join(f"{v:>22.2f}" for v in values))
    print("\nmedian batch-1 latency ratios:")
    for name, (medians, *_) in results.items():
        for description, a, b in RATIOS:
            print(f"  {name:<14}{description:<44}{medians[a] / medians[b]:.3f}")
    if "bn_inception" in results:
        medians = results["bn_inception"][0]
        ratio = medians[3] / medians[0]
        print(f"\nBN-Inception default export / unfolded with variables: {ratio:.3f} "
              f"(target <= 0.85: {'met' if ratio <= 0.85 else 'NOT met'})")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs (other processes inflate the medians)")


if __name__ == "__main__":
    main()
