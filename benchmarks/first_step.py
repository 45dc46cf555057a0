"""BN-Inception's first training step in the trainer: bn_zoo's BN against Keras' BN.

The trainer's first call of its training loop (a `tf.range` loop around
`strategy.run` inside one `tf.function`, as `bn_zoo.training.steps`) traces
the step, lets Grappler optimize the graph and runs it once; on a CPU that takes
minutes at full size and dominates short runs. This times that first call
(one step), and the second (the step alone), for BN-Inception built as
registered and with every BN swapped for `keras.layers.BatchNormalization`
(the build of `benchmarks/inception_speed.py`), each in a fresh process, and
prints the ratio (goal: ours ≤ 1.2× the Keras-BN build).

Then the same for bn_zoo builds with one of the layer's extra ops taken out,
so that the difference from the full layer is what that op costs the first
step:

- `no shift`: the fused kernel on the input itself (inexact far from zero)
  instead of on the input shifted by one of each channel's values;
- `Keras update`: the moving averages updated as Keras does, without the
  update counter (`moving_statistics_updates`) and its zero-debias read;
- `dynamic batch` / `dynamic batch, no check`: a batch of unknown size, where
  the layer adds its run-time refusal of m' <= 1, with and without it (the
  trainer's batches have a static size: there the refusal adds no op).

Inference's choice of statistics (`use_population_statistics`) is not part
of a training step; evaluation traces it once.

    python benchmarks/first_step.py [--size 224] [--batch 32] [--variants keras bn_zoo ...]

At the full size (224², batch 32) each process takes minutes on 2 cores;
`--size 112 --batch 8` keeps the trace (which does not depend on the size)
and shortens the run.
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import machine  # noqa: E402  (benchmarks/, the script's directory)

VARIANTS = ("keras", "bn_zoo", "no shift", "Keras update", "dynamic batch",
            "dynamic batch, no check")


def _patch(variant):
    """Takes the variant's op out of bn_zoo's layer (this process only)."""
    from bn_zoo.layers import fused, moving, training

    if variant == "no shift":
        def unshifted(x, channel_axis, gamma, beta, epsilon, data_format):
            import tensorflow as tf

            outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=fused._scale(gamma, (x.shape[channel_axis],)),
                offset=fused._offset(beta, (x.shape[channel_axis],)),
                mean=tf.zeros((0,)), variance=tf.zeros((0,)), epsilon=epsilon,
                data_format=data_format, is_training=True)
            return outputs, mean, variance

        fused.training = unshifted
    elif variant == "Keras update":
        def keras_update(layer, mean, biased_variance, count, stddev=None):
            from keras import ops

            variance = biased_variance
            if layer.variance_correction == "unbiased":
                variance = biased_variance * (count / (count - 1.0))
            m = layer.momentum
            layer.moving_mean.assign(layer.moving_mean * m + mean * (1.0 - m))
            layer.moving_variance.assign(
                layer.moving_variance * m + ops.cast(variance, "float32") * (1.0 - m))

        moving.update = keras_update
    elif variant == "dynamic batch, no check":
        training.count_check = lambda *args, **kwargs: None


def train_loop_fn(model, optimizer, strategy, batch, weight_decay=4e-5):
    """The trainer's training loop (`bn_zoo.training.steps.Steps.train_loop`,
    rebuilt here so that the benchmark does not depend on its config): n
    steps in one `tf.function`, a `tf.range` loop around `strategy.run`; each
    step the loss over the global batch plus L2 decay of the kernels, the
    gradients, the optimizer's update and the running loss."""
    import tensorflow as tf

    kernels = [v for v in model.trainable_variables if v.path.endswith("kernel")]
    with strategy.scope():
        loss_sum = tf.Variable(0.0, trainable=False,
                               synchronization=tf.VariableSynchronization.ON_READ,
                               aggregation=tf.VariableAggregation.SUM)

    def step(images, labels):
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=logits)
            loss = tf.reduce_sum(per_example) / batch
            loss += weight_decay * tf.add_n([tf.nn.l2_loss(k) for k in kernels])
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        loss_sum.assign_add(tf.reduce_sum(per_example))

    @tf.function
    def train_loop(iterator, num_steps):
        for _ in tf.range(num_steps):
            strategy.run(step, args=next(iterator))

    return train_loop, loss_sum


def run_variant(variant, size, batch):
    """One build's (build, trace, first call after the trace, second call)
    in seconds, and the traced graph's node count, in this process."""
    _patch(variant)
    import keras
    import numpy as np
    import tensorflow as tf

    import bn_zoo
    from inception_speed import with_keras_batch_norm

    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.get_strategy()  # the trainer's "default" strategy
    model = bn_zoo.create_model("bn_inception", input_shape=(size, size, 3),
                                classifier_activation=None)
    if variant == "keras":
        model = with_keras_batch_norm(model)
    optimizer = keras.optimizers.SGD(0.045, momentum=0.9)
    optimizer.build(model.trainable_variables)
    train_loop, loss_sum = train_loop_fn(model, optimizer, strategy, batch)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    labels = rng.integers(0, 1000, batch)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).repeat()
    dataset = dataset.batch(batch, drop_remainder=not variant.startswith("dynamic"))
    iterator = iter(strategy.distribute_datasets_from_function(lambda _: dataset))
    built = time.perf_counter() - start
    one = tf.constant(1, tf.int32)
    start = time.perf_counter()
    concrete = train_loop.get_concrete_function(iterator, one)  # the trace alone
    traced = time.perf_counter() - start
    graph = concrete.graph.as_graph_def()  # its nodes, those of the loop body included
    nodes = len(graph.node) + sum(len(f.node_def) for f in graph.library.function)
    times = []
    for _ in range(2):  # Grappler and the first run, then a step alone
        start = time.perf_counter()
        train_loop(iterator, one)
        float(loss_sum.numpy())  # waits for the step
        times.append(time.perf_counter() - start)
    return built, traced, times[0], times[1], nodes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--processes", type=int, default=1,
                        help="fresh processes per build; the fastest counts")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # one variant, in a child
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_variant(args.run, args.size, args.batch)))
        return

    print(machine.describe())
    print(f"BN-Inception, {args.size}x{args.size}, batch {args.batch}, the trainer's "
          "training loop (one step per call); each build in a fresh process, the "
          f"fastest of {args.processes}. The first step is the trace (Python) plus the "
          "first call (Grappler, the first run); step: the second call\n")
    print(f"{'build':26s} {'build s':>8s} {'trace s':>8s} {'1st call s':>11s} "
          f"{'first step s':>13s} {'step s':>7s} {'graph nodes':>12s} "
          f"{'first vs keras':>15s} {'trace vs keras':>15s}")
    results, traces = {}, {}
    for variant in args.variants:
        runs = []
        for _ in range(args.processes):
            run = subprocess.run(
                [sys.executable, __file__, "--run", variant, "--size", str(args.size),
                 "--batch", str(args.batch)],
                capture_output=True, text=True)
            if run.returncode != 0:
                print(f"{variant:26s} failed: {run.stderr.strip().splitlines()[-1]}")
                break
            runs.append(json.loads(run.stdout.strip().splitlines()[-1]))
        if len(runs) < args.processes:
            continue
        built, traced, call, step, nodes = min(runs, key=lambda r: r[1] + r[2])
        first = traced + call
        results[variant] = first
        traces[variant] = traced
        ratio = trace_ratio = ""
        if "keras" in results:
            ratio = f"{first / results['keras']:.2f}x"
            trace_ratio = f"{traced / traces['keras']:.2f}x"
        print(f"{variant:26s} {built:8.1f} {traced:8.1f} {call:11.1f} {first:13.1f} "
              f"{step:7.2f} {nodes:12d} {ratio:>15s} {trace_ratio:>15s}", flush=True)
    if "bn_zoo" in results:
        print()
        if "keras" in results:
            print(f"first step, bn_zoo / Keras BN: {results['bn_zoo'] / results['keras']:.2f}x "
                  "(goal <= 1.2x)")
        for variant, base in (("no shift", "bn_zoo"), ("Keras update", "bn_zoo"),
                              ("dynamic batch, no check", "dynamic batch")):
            if variant in results and base in results:
                print(f"{base} - {variant}: {results[base] - results[variant]:+.1f} s "
                      f"of the first step, {traces[base] - traces[variant]:+.1f} s of "
                      "the trace")
    print(machine.load_average())


if __name__ == "__main__":
    main()
