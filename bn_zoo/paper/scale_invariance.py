"""Section 3.3, scale invariance, as an experiment on MNIST: run, table, plot.

"Batch Normalization also makes training more resilient to the parameter
scale. [...] BN((aW)u) = BN(Wu) [...] larger weights lead to smaller
gradients, and Batch Normalization will stabilize the parameter growth."

`run_experiment(config, workdir)` (configs/scale_invariance.py) trains the
Figure 1 MLP without and with BN from initial hidden-layer weights scaled by
each a of `config.scales` (same seed, same batches), recording the Frobenius
norm of every hidden kernel and of its gradient every `log_every_steps`
steps, then writes

    workdir/scale_invariance.png  hidden2's kernel norm ‖W‖ and gradient norm
                                  ‖∂L/∂W‖ against the step, one curve per
                                  (network, a)
    workdir/scale_invariance.csv  every logged norm: network, scale, step,
                                  layer, weight_norm, gradient_norm
    workdir/scale_invariance.md   per run: ‖W‖ and ‖∂L/∂W‖ of hidden2 at the
                                  first and last step, final test accuracy

and returns the table's text. A run takes a few seconds; nothing is resumed.
"""

import os
import time

from bn_zoo import runs
from bn_zoo.paper import plotting
from bn_zoo.training.errors import ConfigError

HIDDEN = ("hidden1_dense", "hidden2_dense", "hidden3_dense")
SHOWN = "hidden2_dense"
CSV_COLUMNS = ("network", "scale", "step", "layer", "weight_norm", "gradient_norm")


def check_config(config):
    """Raises ConfigError unless the scales are positive and the step counts >= 1."""
    if not config.scales or any(not s > 0 for s in config.scales):
        raise ConfigError(f"config.scales must be positive numbers; got {config.scales!r}.")
    if config.num_train_steps < 1 or config.log_every_steps < 1:
        raise ConfigError("config.num_train_steps and config.log_every_steps must be >= 1.")


def train_one(config, network, scale, images, labels, test_images, test_labels):
    """Trains one run; returns (norm rows, final test accuracy)."""
    import keras
    import numpy as np
    import tensorflow as tf

    import bn_zoo

    keras.utils.set_random_seed(config.seed)
    model = bn_zoo.create_model(network, weights=None)
    for name in HIDDEN:
        kernel = model.get_layer(name).kernel
        kernel.assign(kernel * scale)
    schedule = keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate, config.decay_steps, config.decay_rate, staircase=True)
    optimizer = keras.optimizers.SGD(schedule)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    kernels = [model.get_layer(name).kernel for name in HIDDEN]

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        by_id = {id(v): g for v, g in zip(model.trainable_variables, gradients)}
        norms = [(tf.norm(k), tf.norm(by_id[id(k)])) for k in kernels]
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return norms

    rng = np.random.default_rng(config.seed)  # The same batches for every run.
    rows = []
    for index in range(config.num_train_steps):
        batch = rng.integers(0, len(images), config.batch_size)
        norms = step(images[batch], labels[batch])
        if index % config.log_every_steps == 0 or index == config.num_train_steps - 1:
            for name, (weight, gradient) in zip(HIDDEN, norms):
                rows.append({"network": network, "scale": scale, "step": index, "layer": name,
                             "weight_norm": float(weight), "gradient_norm": float(gradient)})
    predictions = model.predict(test_images, batch_size=10_000, verbose=0)
    return rows, float(np.mean(np.argmax(predictions, -1) == test_labels))


def _shown_rows(rows, network, scale):
    return [r for r in rows if r["network"] == network and r["scale"] == scale
            and r["layer"] == SHOWN]


def format_table(config, rows, accuracy):
    """Markdown: per (network, a), SHOWN's ‖W‖ and ‖∂L/∂W‖ at the first and
    last logged step and the final test accuracy (`accuracy[(network, a)]`)."""
    lines = ["| network | a | ‖W‖ first | ‖W‖ last | ‖∂L/∂W‖ first | ‖∂L/∂W‖ last "
             "| test accuracy |", "|---|---|---|---|---|---|---|"]
    for network in config.networks:
        for scale in config.scales:
            mine = _shown_rows(rows, network, scale)
            first, last = mine[0], mine[-1]
            lines.append(f"| {network} | {scale:g} | {first['weight_norm']:.3g} | "
                         f"{last['weight_norm']:.3g} | {first['gradient_norm']:.3g} | "
                         f"{last['gradient_norm']:.3g} | "
                         f"{100 * accuracy[(network, scale)]:.2f}% |")
    return "\n".join(lines)


def plot(config, rows, path):
    """(a) SHOWN's weight norm and (b) gradient norm against the step (log
    scale), one curve per (network, a); a PNG written atomically."""
    plt = plotting.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    styles = {0: "-", 1: "--", 2: ":"}
    for network, color in zip(config.networks, ("tab:blue", "tab:red")):
        for index, scale in enumerate(config.scales):
            mine = _shown_rows(rows, network, scale)
            steps = [r["step"] for r in mine]
            for ax, key in zip(axes, ("weight_norm", "gradient_norm")):
                ax.plot(steps, [r[key] for r in mine], styles.get(index % 3), color=color,
                        label=f"{network}, a={scale:g}")
    axes[0].set(yscale="log", xlabel="training step", ylabel=f"‖W‖ of {SHOWN}",
                title="(a) weight norm")
    axes[1].set(yscale="log", xlabel="training step", ylabel=f"‖∂L/∂W‖ of {SHOWN}",
                title="(b) gradient norm")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    plotting.save_png(fig, path, dpi=100)


def run_experiment(config, workdir):
    """Trains every (network, a), writes the CSV, plot and table; returns the
    table's text."""
    import keras
    import numpy as np

    from bn_zoo.data import mnist
    from bn_zoo.models.preprocessing import preprocess_input

    check_config(config)
    start = time.perf_counter()
    images, labels = mnist.load(config.train_split, config.data_dir)
    test_images, test_labels = mnist.load(config.test_split, config.data_dir)
    images = np.asarray(preprocess_input(images.astype("float32"), mode="mnist"))
    test_images = np.asarray(preprocess_input(test_images.astype("float32"), mode="mnist"))
    rows, accuracy = [], {}
    for network in config.networks:
        for scale in config.scales:
            run_rows, accuracy[(network, scale)] = train_one(
                config, network, float(scale), images, labels, test_images, test_labels)
            rows += run_rows
            keras.backend.clear_session()
    os.makedirs(workdir, exist_ok=True)
    runs.write_csv(os.path.join(workdir, "scale_invariance.csv"), rows, list(CSV_COLUMNS))
    plot(config, rows, os.path.join(workdir, "scale_invariance.png"))
    text = (f"Scale invariance (Section 3.3), {config.num_train_steps:,} steps, {SHOWN}:\n\n"
            f"{format_table(config, rows, accuracy)}\n\n"
            f"Time: {time.perf_counter() - start:.0f} s.")
    runs.atomic_write(os.path.join(workdir, "scale_invariance.md"), (text + "\n").encode())
    return text
