"""Figure 1 of the paper (Section 4.1) from two runs' metrics, and its summary.

(a) Test accuracy of the MNIST network trained with and without Batch
Normalization, against the number of training steps. (b, c) The evolution of
the input distribution to a typical sigmoid of the last hidden layer, as its
{15, 50, 85}th percentiles: (b) without BN, (c) with BN.

`rows` arguments are the rows of a run's `metrics.csv`
(`bn_zoo.training.workdir.read_csv`).
"""

import io
import math
import os

from bn_zoo.training import workdir as workdir_lib

_COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange")


def _series(rows, column):
    points = [(r["step"], r[column]) for r in rows if not math.isnan(r.get(column, math.nan))]
    return [p[0] for p in points], [p[1] for p in points]


def percentile_columns(rows):
    """The probe columns of a run ('probe_p15', ...), sorted by percentile."""
    columns = [c for c in (rows[0] if rows else {}) if c.startswith("probe_p")]
    return sorted(columns, key=lambda c: float(c[len("probe_p"):]))


def plot(baseline_rows, bn_rows, path, baseline_label="Without BN", bn_label="With BN"):
    """Draws Figure 1 (a, b, c) into a PNG at `path` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.8))
    ax = axes[0]
    lowest = 1.0
    for rows, label, color in ((baseline_rows, baseline_label, "tab:blue"),
                               (bn_rows, bn_label, "tab:red")):
        steps, accuracy = _series([r for r in rows if r["step"] > 0], "eval_accuracy")
        ax.plot(steps, accuracy, color=color, label=label)
        lowest = min([lowest] + accuracy)
    ax.set_ylim(0.7 if lowest >= 0.7 else max(0.0, lowest - 0.02), 1.0)  # The paper's 0.7-1.
    ax.set_xlabel("training steps")
    ax.set_ylabel("test accuracy")
    ax.set_title("(a) test accuracy")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)

    for ax, rows, title in ((axes[1], baseline_rows, f"(b) {baseline_label}"),
                            (axes[2], bn_rows, f"(c) {bn_label}")):
        for column, color in zip(percentile_columns(rows), _COLORS):
            steps, values = _series(rows, column)
            ax.plot(steps, values, color=color, label=f"{column[len('probe_p'):]}th percentile")
        ax.set_xlabel("training steps")
        ax.set_title(f"{title}: input to a last-layer sigmoid")
        ax.grid(alpha=0.3)
    axes[1].sharey(axes[2])
    axes[1].set_ylabel("sigmoid input")
    axes[2].legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    workdir_lib.atomic_write(os.fspath(path), buffer.getvalue())


def summarize(baseline_rows, bn_rows, baseline_final, bn_final, targets):
    """Final accuracies, when BN first reached the baseline's final accuracy,
    and whether each target holds.

    Args:
        baseline_rows, bn_rows: metrics rows of the two runs.
        baseline_final, bn_final: the runs' `final.json` contents.
        targets: dict with `bn_min_accuracy`, `bn_above_from_step`,
            `bn_reaches_baseline_within`.
    """
    baseline_by_step = {r["step"]: r["eval_accuracy"] for r in baseline_rows}
    bn_by_step = {r["step"]: r["eval_accuracy"] for r in bn_rows}
    baseline_last = max(baseline_by_step)
    baseline_accuracy = baseline_by_step[baseline_last]
    bn_accuracy = bn_by_step[max(bn_by_step)]
    reached = [s for s in sorted(bn_by_step) if bn_by_step[s] >= baseline_accuracy]
    common = sorted(s for s in set(baseline_by_step) & set(bn_by_step)
                    if s >= targets["bn_above_from_step"])
    below = [s for s in common if bn_by_step[s] <= baseline_by_step[s]]
    reach_step = reached[0] if reached else None
    return {
        "steps": baseline_last,
        "baseline_accuracy": baseline_accuracy,
        "bn_accuracy_moving": bn_final.get("eval_accuracy_moving", bn_accuracy),
        "bn_accuracy_population": bn_final.get("eval_accuracy_population"),
        "bn_first_reaches_baseline_at_step": reach_step,
        "bn_not_above_baseline_at_steps": below,
        "targets": {
            "bn_accuracy_at_least": [targets["bn_min_accuracy"], bn_accuracy >= targets["bn_min_accuracy"]],
            "bn_above_baseline_from_step": [targets["bn_above_from_step"], not below and bool(common)],
            "bn_reaches_baseline_within_steps": [
                targets["bn_reaches_baseline_within"],
                reach_step is not None and reach_step <= targets["bn_reaches_baseline_within"],
            ],
        },
    }


def _above_status(summary):
    met = summary["targets"]["bn_above_baseline_from_step"][1]
    below = summary["bn_not_above_baseline_at_steps"]
    if met:
        return "met"
    if not below:
        return "NOT met (no evaluation that late)"
    return f"NOT met at steps {below}"


def format_summary(summary):
    """The summary as the lines the Figure 1 command prints."""

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.2f}%"

    t = summary["targets"]
    reach = summary["bn_first_reaches_baseline_at_step"]
    lines = [
        f"Figure 1 (Section 4.1), MNIST test set, {summary['steps']:,} steps:",
        f"  baseline (no BN) final test accuracy:     {pct(summary['baseline_accuracy'])}",
        f"  BN final test accuracy, moving averages:  {pct(summary['bn_accuracy_moving'])}",
        f"  BN final test accuracy, population stats: {pct(summary['bn_accuracy_population'])}",
        "  BN first reached the baseline's final accuracy at step: "
        + ("never" if reach is None else f"{reach:,}"),
        "targets:",
        f"  BN >= {pct(t['bn_accuracy_at_least'][0])} at the end: "
        f"{'met' if t['bn_accuracy_at_least'][1] else 'NOT met'}",
        f"  BN above the baseline at every evaluation from step "
        f"{t['bn_above_baseline_from_step'][0]:,}: " + _above_status(summary),
        f"  BN reaches the baseline's final accuracy within "
        f"{t['bn_reaches_baseline_within_steps'][0]:,} steps: "
        f"{'met' if t['bn_reaches_baseline_within_steps'][1] else 'NOT met'}",
    ]
    return "\n".join(lines)
