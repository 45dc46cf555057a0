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
"""

from trainers import quiet  # First: quiets TensorFlow before it starts.

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


def report(runs, target=None, baseline="inception", column="eval_accuracy", output=None,
           notes=None):
    """The table, the paper's numbers and the claims as text; plots if asked."""
    from bn_zoo import results

    names = [r["name"] for r in runs]
    baseline = baseline if baseline in names else None
    table = results.figure3_table(runs, target=target, baseline=baseline, column=column)
    lines = [results.format_table(table, notes)]
    paper = results.paper_table(r["model"] for r in runs if r["model"])
    if paper:
        lines += ["", "The paper's Figure 3 (ImageNet, batch 32):", "",
                  "| model | steps to 72.2% | max accuracy |", "|---|---:|---:|"]
        for model, (steps, best) in paper.items():
            shown = "—" if steps is None else f"{steps / 1e6:.1f}·10⁶"
            lines.append(f"| {model} | {shown} | {100 * best:.1f}% |")
    claims = results.check_claims(table, baseline=baseline or "")
    if claims:
        lines += ["", "Claims of Section 4.2.2:", results.format_claims(claims)]
    if output:
        results.plot(runs, output, target=table[0]["target"] if table else None, column=column)
        lines += ["", f"Plot: {output}"]
    return "\n".join(lines), table, claims


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    from bn_zoo import results

    try:
        if bool(WORKDIRS.value) == bool(ROOT.value):
            raise ValueError("Give exactly one of --workdirs=DIR1,DIR2,... and --root=DIR.")
        workdirs = WORKDIRS.value or results.find_workdirs(ROOT.value)
        text, _, _ = report(results.read_runs(workdirs), TARGET.value, BASELINE.value,
                            COLUMN.value, OUTPUT.value)
    except (ValueError, FileNotFoundError) as error:
        print(f"ERROR: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(text, flush=True)


if __name__ == "__main__":
    app.run(main)
