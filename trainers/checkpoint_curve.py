r"""Evaluates every checkpoint of a run twice: with the BN moving averages and
with Algorithm 2's population statistics (Section 3.1).

    python -m trainers.checkpoint_curve --workdir=workdirs/ablation/bn_x30 \
        --population_batches=100

The trainer evaluates with the moving averages (momentum 0.99 by default),
which trail the weights by roughly 1/(1 − momentum) steps: when the weights
move fast, an evaluation can fall far below what the same weights give with
statistics of their own. For every `ckpt-<step>` of workdir/checkpoints this
restores the weights, evaluates on the run's evaluation split with the moving
averages, then estimates the population statistics from
`--population_batches` training batches (the run's global batch) and
evaluates again. It writes

    workdir/checkpoint_curve.csv   step, accuracy_moving, accuracy_population,
                                   loss_moving, loss_population

and prints the table. Keep every checkpoint of a run for a full curve, e.g.
`--config.checkpoint_every_steps=100 --config.max_checkpoints_to_keep=1000`
when training. TensorFlow only; the run's config.json picks model and data.
The experiment itself is `bn_zoo.paper.checkpoint_curve`.
"""

from . import quiet  # First: quiets TensorFlow before it starts.

import os

from absl import app, flags

from bn_zoo.paper import checkpoint_curve
from bn_zoo.training import cli

WORKDIR = cli.WORKDIR  # The run's workdir (trainers.train --workdir).
POPULATION_BATCHES = flags.DEFINE_integer(
    "population_batches", 100,
    "Training batches (of the run's global batch size) Algorithm 2 averages over.")
flags.mark_flag_as_required("workdir")


def _print_row(row):
    print(checkpoint_curve.format_row(row), flush=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    cli.run(lambda: checkpoint_curve.curve(WORKDIR.value, POPULATION_BATCHES.value,
                                           progress=_print_row))
    written = os.path.join(os.path.abspath(WORKDIR.value), checkpoint_curve.CSV_FILE)
    print(f"Written: {written}", flush=True)


def run():
    """The console command `bn-zoo-checkpoint-curve` (pyproject.toml), as
    `python -m trainers.checkpoint_curve`."""
    quiet.run(main)


if __name__ == "__main__":
    run()
