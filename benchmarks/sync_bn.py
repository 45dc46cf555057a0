"""Cost of synchronized BN: BN-Inception under MirroredStrategy, synchronized
against per-replica statistics.

Splits the CPU into 2 logical devices, builds BN-Inception (depth multiplier
0.25, 64×64×3, 1000 classes) twice under one `MirroredStrategy` (collective
all-reduces), with `synchronized=False` and `synchronized=True`, and trains
each with SGD on random batches of 16 (8 per replica). Prints, from one run:
the first step (trace and run), the median steady step, and the collective
ops in one step's graph, per BN layer per replica. Targets:
≤ 2 collectives per BN layer per replica per step (one forward, one
backward); first step ≤ 1.5× and steady step ≤ 1.25× the unsynchronized.

    python benchmarks/sync_bn.py [--steps 20] [--no_full_width] [--trace_dir DIR]

It also counts the collectives of the full-width 224×224 model (traced, not
run; `--no_full_width` skips it). The unsynchronized step's collectives are
the optimizer's all-reduce of the gradients; what synchronization adds is
counted per BN layer. The first step is mostly tracing and Grappler, whose
cost grows with the ops in the step's graph, so that count is printed too.
`--trace_dir` writes a TensorBoard profile of each first step.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

REPLICAS = 2
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * REPLICAS,
)

import keras  # noqa: E402

import bn_zoo  # noqa: E402
from bn_zoo import population  # noqa: E402
import machine  # noqa: E402  (benchmarks/, the script's directory)


def build(strategy, synchronized, input_shape, depth_multiplier):
    with strategy.scope():
        model = bn_zoo.create_model(
            "bn_inception",
            input_shape=input_shape,
            depth_multiplier=depth_multiplier,
            classifier_activation=None,
            batch_norm_kwargs={"synchronized": synchronized},
        )
        optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
        optimizer.build(model.trainable_variables)

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_sum(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            ) / (8.0 * REPLICAS)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    @tf.function
    def step(images, labels):
        return strategy.run(replica_step, args=(images, labels))

    return model, step


def collectives_per_layer(model, step, element):
    """Collective ops in the graph of one step, in all and per BN layer per
    replica, and all ops of that graph."""
    operations = step.get_concrete_function(*element).graph.get_operations()
    count = sum(op.type.startswith("Collective") for op in operations)
    layers = len(population.batch_normalization_layers(model))
    return count, count / (layers * REPLICAS), len(operations)


def distributed_batches(strategy, shape, batch):
    images = tf.random.uniform((batch,) + shape)
    labels = tf.random.uniform((batch,), maxval=1000, dtype=tf.int32)
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
    return iter(strategy.experimental_distribute_dataset(dataset))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no_full_width", action="store_true")
    parser.add_argument("--trace_dir", default=None)
    args = parser.parse_args()
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")][:REPLICAS]
    )
    shape, batch = (64, 64, 3), 8 * REPLICAS
    results = {}
    for synchronized in (False, True):
        model, step = build(strategy, synchronized, shape, 0.25)
        iterator = distributed_batches(strategy, shape, batch)
        if args.trace_dir:
            tf.profiler.experimental.start(os.path.join(args.trace_dir, f"sync_{synchronized}"))
        start = time.perf_counter()
        strategy.experimental_local_results(step(*next(iterator)))[0].numpy()
        first = time.perf_counter() - start
        if args.trace_dir:
            tf.profiler.experimental.stop()
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            strategy.experimental_local_results(step(*next(iterator)))[0].numpy()
            times.append(time.perf_counter() - start)
        results[synchronized] = (first, statistics.median(times)) + collectives_per_layer(
            model, step, next(iterator))

    print(machine.describe())
    print(f"BN-Inception depth "
          f"0.25, 64x64, global batch {batch}, MirroredStrategy on {REPLICAS} logical "
          f"CPUs, median of {args.steps} steps\n")
    print(f"{'':20s} {'first step s':>13s} {'steady step s':>14s} {'collectives':>12s} "
          f"{'per BN layer per replica':>25s} {'graph ops':>10s}")
    for synchronized, (first, steady, total, per_layer, ops) in results.items():
        print(f"synchronized={synchronized!s:5s}  {first:13.2f} {steady:14.3f} {total:12d} "
              f"{per_layer:25.2f} {ops:10d}")
    (first0, steady0, total0, per_layer0, ops0), (first1, steady1, _, per_layer1, ops1) = (
        results[False], results[True])
    print(f"\nsynchronized / not: first step {first1 / first0:.2f}x (target <= 1.5x), "
          f"steady step {steady1 / steady0:.2f}x (target <= 1.25x), graph ops "
          f"{ops1 / ops0:.2f}x; {per_layer1 - per_layer0:.2f} collectives per BN layer per "
          f"replica for the BN statistics (target <= 2), besides the {total0} of the "
          "gradients' all-reduce")
    if not args.no_full_width:
        model, step = build(strategy, True, (224, 224, 3), 1.0)
        element = next(distributed_batches(strategy, (224, 224, 3), 2 * REPLICAS))
        total, per_layer, _ = collectives_per_layer(model, step, element)
        print(f"full width, 224x224, synchronized=True: {total} collectives, "
              f"{per_layer:.2f} per BN layer per replica")


if __name__ == "__main__":
    main()
