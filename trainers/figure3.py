r"""Figure 3 of the paper (Section 4.2.2) from trainer workdirs.

    python -m trainers.figure3 --root=workdirs/ablation --output=figure3.png
    python -m trainers.figure3 --workdirs=workdirs/inception,workdirs/bn_x5 \
        --baseline=inception --target=0.722

Reads the `metrics.csv` of each run and prints Figure 3's table: the steps
each run needed to reach the target accuracy (default: the baseline run's
maximum, as the paper uses Inception's 72.2%), its speed-up over the baseline
and its maximum accuracy; then the paper's numbers for the registered models
and the paper's claims the runs check. With --output, also plots the
validation accuracy of all runs against the training steps (Figure 2).
The experiment itself is `bn_zoo.paper.figure3`.
"""

from . import quiet  # First: quiets TensorFlow before it starts.

import sys

from absl import app, flags


WORKDIRS = flags.DEFINE_list("workdirs", None, "Run workdirs, comma-separated.")
ROOT = flags.DEFINE_string("root", None, "A directory whose subdirectories are run workdirs.")
TARGET = flags.DEFINE_float(
    "target", None, "Accuracy to reach, as a fraction (e.g. 0.722). Default: the maximum "
    "accuracy of the --baseline run.")
BASELINE = flags.DEFINE_string(
    "baseline", "inception", "Name (workdir base name) of the reference run; '' for none.")
OUTPUT = flags.DEFINE_string("output", None, "Where to write the plot (PNG).")
COLUMN = flags.DEFINE_string("column", "eval_accuracy",
                             "Metrics column to compare, e.g. eval_top5_accuracy.")


def main(argv):
    from bn_zoo.paper import figure3, workdirs  # Here: --help skips TensorFlow.

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    try:
        if bool(WORKDIRS.value) == bool(ROOT.value):
            raise ValueError("Give exactly one of --workdirs=DIR1,DIR2,... and --root=DIR.")
        found = WORKDIRS.value or workdirs.find_workdirs(ROOT.value)
        text, _, _ = figure3.report(workdirs.read_runs(found), TARGET.value, BASELINE.value,
                                    COLUMN.value, OUTPUT.value)
    except (ValueError, FileNotFoundError) as error:
        print(f"ERROR ({type(error).__name__}): {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(text, flush=True)


def run():
    """The console command `bn-zoo-figure3` (pyproject.toml), as
    `python -m trainers.figure3`."""
    quiet.run(main)


if __name__ == "__main__":
    run()
