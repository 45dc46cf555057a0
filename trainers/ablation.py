r"""Figure 3 at CPU scale (Section 4.2.2) with one command: train every run,
then the table, the claims and the plot.

    python -m trainers.ablation --config=configs/figure3_cpu.py --workdir=workdirs/figure3_cpu

Runs `config.runs` one after the other, each as
`python -m trainers.train --config=configs/ablation.py:<run>
--workdir=<workdir>/<run>` would, with the same number of steps for all. A
run whose loss becomes NaN/Inf (Inception without BN at a high learning rate
may) is recorded as diverged and the next run starts. Then it writes

    workdir/figure3.png    validation accuracy of every run against steps
    workdir/figure3.md     Figure 3's table, the paper's numbers, the claims
    workdir/figure3.json   the same as data

and prints the table. Rerunning resumes what is unfinished; finished runs
are not trained again. --print_config prints the fields of the config
(configs/figure3_cpu.py) with their meaning. The experiment itself is
`bn_zoo.paper.figure3.run_ablation`.
"""

from . import quiet  # First: quiets TensorFlow before it starts.

import ml_collections
from absl import app, flags

from bn_zoo.training import cli

flags.adopt_module_key_flags(cli)


def main(argv):
    from bn_zoo.paper import figure3, setups  # Here: --help skips TensorFlow.

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    config = ml_collections.ConfigDict(cli.loaded(cli.CONFIG.value).to_dict())
    if cli.DATA_DIR.value is not None:
        config.data_dir = cli.DATA_DIR.value
    if cli.PRINT_CONFIG.value:
        overridden = cli.overridden_fields()
        if cli.DATA_DIR.value is not None:
            overridden.add("data_dir")  # This config's data directory field.
        print(figure3.describe_ablation(config, overridden, cli.config_filename()), flush=True)
        return
    text = cli.run(lambda: figure3.run_ablation(
        config, cli.WORKDIR.value, setups.ablation_run, cli.STRATEGY.value))
    print(text, flush=True)


def run():
    """The console command `bn-zoo-ablation` (pyproject.toml), as
    `python -m trainers.ablation`."""
    cli.require_flags()
    quiet.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
