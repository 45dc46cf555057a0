"""One table of bn_zoo's speed on a GPU: `bash benchmarks/device.sh` runs this.

Rows, each ours against its reference from one run in one process:

- the BN layer on the shape of `benchmarks/bn_layer.py` (32, 56, 56, 192),
  channels-last: a training step (forward, backward, moving averages) and an
  inference step of `bn_zoo.layers.BatchNormalization` against cuDNN's fused
  kernel (`FusedBatchNormV3` called directly), in float32 and in float16
  (our layer under `mixed_float16`; the kernel on float16 with float32
  statistics);
- BN-Inception training at 224², batch 128 (64 or 32 where 128 does not
  fit), `mixed_float16`, without and with XLA: images/s of the registered
  build against the same network with `keras.layers.BatchNormalization`
  (`benchmarks/inception_speed.py`'s Keras-BN build), with the anchor
  NVIDIA publishes for TensorFlow: ResNet-50 v1.5 trains at 2,375 img/s on
  one A100 with AMP and XLA, and BN-Inception has about half ResNet-50's
  multiply-adds;
- serving BN-Inception: batch-1 latency and batch-32 throughput of the
  default export (BN folded, constant weights) against the unfolded
  SavedModel with variables (the graph as Keras runs it).

Each row is printed as it is measured and the table again at the end;
sections that would pass `--budget` seconds are left out and say so.
`--small` runs every section at toy sizes on whatever device there is, to
check the script itself (its figures mean nothing).

    python benchmarks/device.py [--small] [--budget 450]
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import machine  # noqa: E402  (benchmarks/, the script's directory)

ANCHOR = ("NVIDIA's TensorFlow ResNet-50 v1.5 reference: 2,375 img/s on one A100 "
          "(AMP + XLA); BN-Inception has about half ResNet-50's multiply-adds")


class Table:
    """Rows (measure, ours, reference, unit); printed as added and at the end."""

    def __init__(self):
        self.rows = []

    def add(self, measure, ours, reference, unit, higher_is_better=False):
        ratio = ours / reference if reference else float("nan")
        self.rows.append((measure, ours, reference, unit, ratio, higher_is_better))
        print(self._format(self.rows[-1]), flush=True)

    def note(self, measure, text):
        self.rows.append((measure, text))
        print(f"{measure:62s} {text}", flush=True)

    @staticmethod
    def _format(row):
        if len(row) == 2:
            return f"{row[0]:62s} {row[1]}"
        measure, ours, reference, unit, ratio, higher = row
        better = "higher is better" if higher else "lower is better"
        return (f"{measure:62s} {ours:10.2f} {reference:10.2f} {unit:6s} "
                f"{ratio:6.2f}x  ({better})")

    def print(self):
        print(f"\n{'measure':62s} {'ours':>10s} {'reference':>10s} {'unit':6s} {'ratio':>7s}")
        for row in self.rows:
            print(self._format(row))


def bn_layer_rows(table, shape, repeats):
    """Our layer against the fused kernel (cuDNN on a GPU), float32 and float16."""
    from bn_layer import fused_steps, interleaved_median_ms, layer_steps

    from bn_zoo.layers import BatchNormalization

    rng = np.random.default_rng(0)
    for dtype, policy in (("float32", "float32"), ("float16", "mixed_float16")):
        x = tf.constant(rng.normal(size=shape), dtype)
        dy = tf.constant(rng.normal(size=shape), dtype)
        candidates = {
            "ours": layer_steps(BatchNormalization(dtype=policy), x, dy),
            "fused": fused_steps(x, dy),
        }
        train = interleaved_median_ms({k: v[0] for k, v in candidates.items()}, repeats)
        infer = interleaved_median_ms({k: v[1] for k, v in candidates.items()}, repeats)
        name = "x".join(str(d) for d in shape)
        table.add(f"BN layer {name} {dtype} training (vs fused)", train["ours"],
                  train["fused"], "ms")
        table.add(f"BN layer {name} {dtype} inference (vs fused)", infer["ours"],
                  infer["fused"], "ms")


def inception_rows(table, size, batches, steps, xla_modes):
    """BN-Inception training images/s under mixed_float16, ours vs Keras' BN."""
    import bn_zoo
    from inception_speed import measure, with_keras_batch_norm

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        ours = bn_zoo.create_model("bn_inception", input_shape=(size, size, 3),
                                   classifier_activation=None)
        builds = {"ours": ours, "keras": with_keras_batch_norm(ours)}
        rng = np.random.default_rng(0)
        for batch in batches:
            images = tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)), "float32")
            labels = tf.constant(rng.integers(0, 1000, batch))
            try:
                for xla in xla_modes:
                    measured = measure(builds, images, labels, steps, xla)
                    table.add(
                        f"BN-Inception {size}² batch {batch} mixed_float16"
                        f"{' + XLA' if xla else ''} (vs Keras BN)",
                        measured["ours"][0], measured["keras"][0], "img/s",
                        higher_is_better=True)
                return
            except tf.errors.ResourceExhaustedError:
                table.note(f"BN-Inception batch {batch}", "does not fit; a smaller batch")
        table.note("BN-Inception", "no batch fits")
    finally:
        keras.mixed_precision.set_global_policy("float32")


def export_rows(table, repeats, name="bn_inception"):
    """Serving `name`: the default export against the unfolded one."""
    from export_latency import EXPORTS, build, load, time_calls

    from bn_zoo.export import export_model

    model, info = build(name)
    chosen = [EXPORTS[3], EXPORTS[0]]  # the default export, then the reference
    functions = []
    with tempfile.TemporaryDirectory() as root:
        for i, (_, options) in enumerate(chosen):
            path = export_model(model, os.path.join(root, str(i)), info.preprocessing,
                                **options)
            functions.append(load(path, options))
        rng = np.random.default_rng(1)
        one = rng.uniform(0, 255, (1, *info.default_input_shape)).astype("float32")
        many = rng.uniform(0, 255, (32, *info.default_input_shape)).astype("float32")
        latency = time_calls(functions, one, repeats, warmup=5)
        throughput = time_calls(functions, many, max(repeats // 4, 3), warmup=2)
    table.add(f"export {name}: batch-1 latency, folded vs unfolded SavedModel",
              1e3 * latency[0][0], 1e3 * latency[1][0], "ms")
    table.add(f"export {name}: batch-32 throughput, folded vs unfolded",
              32 / throughput[0][0], 32 / throughput[1][0], "img/s", higher_is_better=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true",
                        help="toy sizes on any device: checks the script, not the speed")
    parser.add_argument("--budget", type=float, default=450.0,
                        help="seconds; later sections are left out past it")
    args = parser.parse_args()
    start = time.perf_counter()
    gpus = tf.config.list_physical_devices("GPU")
    print(machine.describe())
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        print(f"GPU: {details.get('device_name', gpu.name)}, compute capability "
              f"{details.get('compute_capability')}")
    if not gpus and not args.small:
        raise SystemExit("ERROR (DeviceError): TensorFlow sees no GPU. Install a CUDA "
                         "build of TensorFlow (pip install 'tensorflow[and-cuda]'), or "
                         "pass --small to check this script on the CPU.")
    print(ANCHOR + "\n")
    if args.small:
        sections = [
            ("BN layer", lambda t: bn_layer_rows(t, (4, 8, 8, 16), repeats=3)),
            ("BN-Inception", lambda t: inception_rows(t, 64, (4,), 2, (False, True))),
            ("export", lambda t: export_rows(t, repeats=3, name="bn_mlp")),
        ]
    else:
        sections = [
            ("BN layer", lambda t: bn_layer_rows(t, (32, 56, 56, 192), repeats=30)),
            ("BN-Inception", lambda t: inception_rows(t, 224, (128, 64, 32), 10,
                                                      (False, True))),
            ("export", lambda t: export_rows(t, repeats=30)),
        ]
    # Each section's share of the budget when it starts: a section that starts
    # with less than this left is skipped rather than cut off.
    needs = {"BN layer": 0.05, "BN-Inception": 0.6, "export": 0.2}
    table = Table()
    for name, run in sections:
        elapsed = time.perf_counter() - start
        if elapsed > args.budget * (1.0 - needs[name]):
            table.note(name, f"left out: {elapsed:.0f} s of the {args.budget:.0f} s "
                             "budget spent")
            continue
        run(table)
    table.print()
    print(f"\n{time.perf_counter() - start:.0f} s; {machine.load_average()}")


if __name__ == "__main__":
    main()
