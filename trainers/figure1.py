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
"""

from trainers import quiet  # First: quiets TensorFlow before it starts.

import os
import time

import ml_collections
from absl import app, flags, logging

from bn_zoo.training import cli

flags.adopt_module_key_flags(cli)

WEIGHTS_DIR = flags.DEFINE_string(
    "weights_dir", None,
    "If set, also write each network's trained weights (bn_mlp with its population "
    "statistics) to <weights_dir>/<network>_mnist.weights.h5 and print their sha256, "
    "e.g. --weights_dir=bn_zoo/weights to refresh the shipped weights.")


# The fields of configs/figure1.py besides `train` (a trainer config, whose
# fields bn_zoo.training.config.field_docs describes).
CONFIG_DOCS = {
    "networks": "The two models trained, the baseline first, then the BN network.",
    "targets.bn_min_accuracy": "Target: the BN network's final test accuracy is at least this.",
    "targets.bn_above_from_step": (
        "Target: the BN network is above the baseline at every evaluation from this step on."),
    "targets.bn_reaches_baseline_within": (
        "Target: the BN network reaches the baseline's final accuracy within this many steps."),
}


def describe(config):
    """The --print_config text: the trainer config of each network, resolved,
    and the fields of CONFIG_DOCS."""
    from bn_zoo.training import describe as describe_lib

    _check(config)
    overridden = cli.overridden_fields("train.data")
    per_network = {}
    for network in config.networks:
        run_config = ml_collections.ConfigDict(config.train.to_dict())
        run_config.model.name = network
        per_network[network] = describe_lib.trainer_fields(run_config, overridden, "train.")
    header = (f"Config {cli.config_filename()}, resolved: after the command line's "
              "overrides, with the fields of train left at None filled from each "
              "network's recipe in the registry (a value that differs between the "
              "networks is given per network). Override any field with "
              "--config.<field>=<value>.")
    fields = (describe_lib.plain_fields(config, {"networks": CONFIG_DOCS["networks"]},
                                        overridden)
              + describe_lib.merge(per_network)
              + describe_lib.plain_fields(
                  config, {k: v for k, v in CONFIG_DOCS.items() if k != "networks"},
                  overridden))
    return describe_lib.format_fields(fields, header)


def _check(config):
    from bn_zoo.training.errors import ConfigError

    if len(config.networks) != 2:
        raise ConfigError(
            "config.networks must name two models, the baseline then the BN network, "
            f"e.g. ('mlp', 'bn_mlp'); got {tuple(config.networks)!r}."
        )


def run_figure1(config, workdir):
    """Trains (or resumes) both networks, plots Figure 1, returns the summary."""
    from bn_zoo import training
    from bn_zoo.plots import figure1
    from bn_zoo.training import workdir as workdir_lib

    _check(config)
    start = time.perf_counter()
    rows, finals = {}, {}
    for network in config.networks:
        run_config = ml_collections.ConfigDict(config.train.to_dict())
        run_config.model.name = network
        run_dir = os.path.join(workdir, network)
        finals[network] = training.train(run_config, run_dir)
        rows[network] = workdir_lib.read_csv(os.path.join(run_dir, workdir_lib.METRICS_FILE))
    baseline, bn = config.networks
    figure1.plot(rows[baseline], rows[bn], os.path.join(workdir, "figure1.png"))
    summary = figure1.summarize(rows[baseline], rows[bn], finals[baseline], finals[bn],
                                config.targets.to_dict())
    summary["seconds"] = round(time.perf_counter() - start, 1)
    combined = [{"network": n, **r} for n in config.networks for r in rows[n]]
    columns = ["network"] + list(dict.fromkeys(c for r in combined for c in r if c != "network"))
    workdir_lib.write_csv(os.path.join(workdir, workdir_lib.METRICS_FILE), combined, columns)
    workdir_lib.write_json(os.path.join(workdir, "summary.json"), summary)
    return summary


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    config = cli.apply_overrides(cli.CONFIG.value, data_field="train.data")
    if cli.PRINT_CONFIG.value:
        print(cli.run(lambda: describe(config)), flush=True)
        return
    summary = cli.run(lambda: run_figure1(config, cli.WORKDIR.value))
    from bn_zoo.plots import figure1

    print(figure1.format_summary(summary), flush=True)
    print(f"Figure: {os.path.join(os.path.abspath(cli.WORKDIR.value), 'figure1.png')} "
          f"({summary['seconds']:.0f} s)", flush=True)
    if WEIGHTS_DIR.value:
        from bn_zoo.training import checkpoints

        for network in config.networks:
            path = os.path.join(WEIGHTS_DIR.value, f"{network}_mnist.weights.h5")
            sha256 = checkpoints.save_weights(os.path.join(cli.WORKDIR.value, network), path)
            print(f"Weights: {path} sha256={sha256}", flush=True)
    logging.info("Done.")


if __name__ == "__main__":
    cli.require_flags()
    app.run(main, flags_parser=cli.parse_flags)
