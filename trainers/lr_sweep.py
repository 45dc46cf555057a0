r"""Section 3.3 with one command: does BN train at learning rates at which the
network without BN diverges or stalls?

    python -m trainers.lr_sweep --config=configs/lr_sweep.py --workdir=workdirs/lr_sweep

Trains every network of `config.networks` (the Figure 1 MLP without and with
BN) at every rate of `config.learning_rates`, each in
workdir/<network>/lr_<rate>, as `python -m trainers.train` would with
--config.optimizer.base_learning_rate=<rate>. A run whose loss or weights
become NaN/Inf is recorded as diverged and the next one starts. Then it writes

    workdir/lr_sweep.png   (a) final test accuracy and (b) steps to 97% test
                           accuracy against the learning rate, per network
    workdir/lr_sweep.csv   one row per run: status (ok, stalled, diverged),
                           final accuracy (BN: with population statistics,
                           and with moving averages), steps to 97%, seconds
    workdir/lr_sweep.md    the table and whether the claim holds

and prints the table. Rerunning resumes what is unfinished; finished and
diverged runs are not trained again. Shared settings are overridden as
--config.train.<field>=value; --print_config prints the fields.
"""

from trainers import quiet  # First: quiets TensorFlow before it starts.

import json
import os
import re
import time

import ml_collections
from absl import app, flags, logging

from bn_zoo.training import cli

flags.adopt_module_key_flags(cli)

# The fields of configs/lr_sweep.py besides `train` (a trainer config).
CONFIG_DOCS = {
    "networks": "The two models trained, the baseline first, then the BN network.",
    "learning_rates": ("Base learning rates of the sweep (replace "
                       "train.optimizer.base_learning_rate; the recipe's decay applies)."),
    "good_accuracy": "A run is good if its final test accuracy is at least this.",
    "stalled_below": "A finite run ending below this test accuracy is marked stalled.",
}
DIVERGED_FILE = "diverged.json"  # In a run's directory: why and when it diverged.


def _check(config):
    from bn_zoo.training.errors import ConfigError

    if len(config.networks) != 2:
        raise ConfigError("config.networks must name two models, the baseline then the BN "
                          f"network, e.g. ('mlp', 'bn_mlp'); got {tuple(config.networks)!r}.")
    rates = list(config.learning_rates)
    if not rates or any(not isinstance(r, (int, float)) or not r > 0 for r in rates):
        raise ConfigError("config.learning_rates must be positive numbers, e.g. "
                          f"(0.01, 0.1, 1.0); got {tuple(rates)!r}.")
    if len(set(rates)) != len(rates):
        raise ConfigError(f"config.learning_rates repeats a rate: {tuple(rates)!r}.")


def run_dir(workdir, network, rate):
    return os.path.join(workdir, network, f"lr_{rate:g}")


def _train_one(config, network, rate, directory):
    """Trains (or resumes) one run; returns (final or None, diverged_at or None)."""
    from bn_zoo import training
    from bn_zoo.training import workdir as workdir_lib

    marker = os.path.join(directory, DIVERGED_FILE)
    previous = workdir_lib.read_json(marker)
    if previous:
        return None, previous["steps"]
    run_config = ml_collections.ConfigDict(config.train.to_dict())
    run_config.model.name = network
    run_config.optimizer.base_learning_rate = float(rate)
    try:
        return training.train(run_config, directory), None
    except training.NonFiniteLossError as error:
        found = re.search(r"between step (\d+) and step (\d+)", str(error))
        steps = f"{found.group(1)}-{found.group(2)}" if found else "unknown"
        logging.warning("%s at learning rate %g diverged (steps %s).", network, rate, steps)
        os.makedirs(directory, exist_ok=True)
        workdir_lib.write_json(marker, {"steps": steps, "error": str(error)})
        return None, steps


def run_sweep(config, workdir):
    """Trains (or resumes) every run, writes the CSV, plot and table; returns
    (table text, summary dict)."""
    import keras

    from bn_zoo import results
    from bn_zoo.plots import lr_sweep
    from bn_zoo.training import workdir as workdir_lib

    _check(config)
    start = time.perf_counter()
    rows = []
    for network in config.networks:
        for rate in config.learning_rates:
            directory = run_dir(workdir, network, rate)
            run_start = time.perf_counter()
            final, diverged_at = _train_one(config, network, rate, directory)
            metrics = os.path.join(directory, workdir_lib.METRICS_FILE)
            metric_rows = results.read_metrics(metrics) if os.path.exists(metrics) else []
            rows.append(lr_sweep.run_row(
                network, float(rate), metric_rows, final, diverged_at,
                time.perf_counter() - run_start, config.good_accuracy, config.stalled_below))
            keras.backend.clear_session()
    baseline, bn = config.networks
    claim = lr_sweep.claim(rows, baseline, bn, config.good_accuracy)
    steps = config.train.num_train_steps
    lr_sweep.write_csv(rows, os.path.join(workdir, "lr_sweep.csv"))
    lr_sweep.plot(rows, config.networks, os.path.join(workdir, "lr_sweep.png"),
                  config.good_accuracy, steps)
    table = lr_sweep.format_table(rows, config.networks, config.good_accuracy)

    def describe(network):
        low, high, count = claim[network]
        return (f"{network}: good (>= {100 * config.good_accuracy:g}%) at {count} rate(s)"
                + (f", {low:g} to {high:g}" if count else ""))

    elapsed = time.perf_counter() - start
    text = (f"Learning-rate sweep, {steps:,} steps per run (Section 3.3):\n\n{table}\n\n"
            f"{describe(baseline)}; {describe(bn)}.\n"
            f"Claim (BN's good range is wider and reaches higher): "
            f"{'holds' if claim['holds'] else 'does NOT hold'} in this sweep.\n"
            f"Time: {elapsed:.0f} s for {len(rows)} runs.")
    workdir_lib.atomic_write(os.path.join(workdir, "lr_sweep.md"), (text + "\n").encode())
    workdir_lib.write_json(os.path.join(workdir, "lr_sweep.json"),
                           {"claim": claim, "rows": rows, "seconds": round(elapsed, 1)})
    return text, claim


def describe(config):
    from bn_zoo.training import describe as describe_lib

    _check(config)
    overridden = cli.overridden_fields("train.data")
    run_config = ml_collections.ConfigDict(config.train.to_dict())
    run_config.model.name = config.networks[1]
    header = (f"Config {cli.config_filename()}, resolved (train: as for {config.networks[1]}; "
              "base_learning_rate is replaced by each rate of learning_rates). Override "
              "any field with --config.<field>=<value>.")
    fields = (describe_lib.plain_fields(config, CONFIG_DOCS, overridden)
              + describe_lib.trainer_fields(run_config, overridden, "train."))
    return describe_lib.format_fields(fields, header)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    config = cli.apply_overrides(cli.CONFIG.value, data_field="train.data")
    if cli.PRINT_CONFIG.value:
        print(cli.run(lambda: describe(config)), flush=True)
        return
    text, _ = cli.run(lambda: run_sweep(config, cli.WORKDIR.value))
    print(text, flush=True)
    print(f"Figure: {os.path.join(os.path.abspath(cli.WORKDIR.value), 'lr_sweep.png')}",
          flush=True)


if __name__ == "__main__":
    cli.require_flags()
    app.run(main, flags_parser=cli.parse_flags)
