r"""Reproduces Figure 1 of the paper (Section 4.1) with one command.

    python -m trainers.figure1 --config=configs/figure1.py --workdir=workdirs/figure1

Trains the MNIST network without BN and with BN (same seed, data order,
optimizer and learning rate) in workdir/mlp and workdir/bn_mlp, then writes

    workdir/figure1.png    (a) test accuracy vs steps, (b, c) the 15th, 50th
                           and 85th percentiles of a last-layer sigmoid's input
    workdir/metrics.csv    both runs' metrics, with a `network` column
    workdir/summary.json   final accuracies (BN with moving averages and with
                           population statistics), the step at which BN first
                           reached the baseline's final accuracy, the targets

and prints the summary. Rerunning resumes whatever is unfinished; a finished
run is not trained again. Shared settings are overridden as
--config.train.<field>=value (e.g. --config.train.num_train_steps=2000);
--print_config prints every field with its value, default and meaning.
The experiment itself is `bn_zoo.paper.figure1`.
"""

from . import quiet  # First: quiets TensorFlow before it starts.

import os

from absl import app, flags, logging

from bn_zoo.training import cli

flags.adopt_module_key_flags(cli)

WEIGHTS_DIR = flags.DEFINE_string(
    "weights_dir", None,
    "If set, also write each network's trained weights (bn_mlp with its population "
    "statistics) to <weights_dir>/<network>_mnist.weights.h5 and print their sha256, "
    "e.g. --weights_dir=bn_zoo/weights to refresh the shipped weights.")


def main(argv):
    from bn_zoo.paper import figure1  # Here: --help skips TensorFlow.

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    config = cli.apply_overrides(cli.CONFIG.value, data_field="train.data")
    if cli.PRINT_CONFIG.value:
        print(cli.run(lambda: figure1.describe(
            config, cli.overridden_fields("train.data"), cli.config_filename())), flush=True)
        return
    summary = cli.run(lambda: figure1.run_figure1(config, cli.WORKDIR.value))
    print(figure1.format_summary(summary), flush=True)
    print(f"Figure: {os.path.join(os.path.abspath(cli.WORKDIR.value), figure1.PLOT_FILE)} "
          f"({summary['seconds']:.0f} s)", flush=True)
    if WEIGHTS_DIR.value:
        for path, sha256 in figure1.save_weights(config, cli.WORKDIR.value, WEIGHTS_DIR.value):
            print(f"Weights: {path} sha256={sha256}", flush=True)
    logging.info("Done.")


def run():
    """The console command `bn-zoo-figure1` (pyproject.toml), as
    `python -m trainers.figure1`."""
    cli.require_flags()
    quiet.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
