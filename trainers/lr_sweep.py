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
--config.train.<field>=value; --print_config prints the fields. The
experiment itself is `bn_zoo.paper.lr_sweep`.
"""

from . import quiet  # First: quiets TensorFlow before it starts.

import os

from absl import app, flags

from bn_zoo.training import cli

flags.adopt_module_key_flags(cli)


def main(argv):
    from bn_zoo.paper import lr_sweep  # Here: --help skips TensorFlow.

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    config = cli.apply_overrides(cli.CONFIG.value, data_field="train.data")
    if cli.PRINT_CONFIG.value:
        print(cli.run(lambda: lr_sweep.describe(
            config, cli.overridden_fields("train.data"), cli.config_filename())), flush=True)
        return
    text, _ = cli.run(lambda: lr_sweep.run_sweep(config, cli.WORKDIR.value))
    print(text, flush=True)
    print(f"Figure: {os.path.join(os.path.abspath(cli.WORKDIR.value), 'lr_sweep.png')}",
          flush=True)


def run():
    """The console command `bn-zoo-lr-sweep` (pyproject.toml), as
    `python -m trainers.lr_sweep`."""
    cli.require_flags()
    quiet.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
