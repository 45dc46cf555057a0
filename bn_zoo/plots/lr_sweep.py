"""The learning-rate sweep of Section 3.3: summary, table and plot.

Section 3.3: "Batch Normalization enables higher learning rates." A sweep
trains the same network with and without BN at several base learning rates
(`trainers/lr_sweep.py`); each run ends in one of three states:

    ok         finite to the end; its final test accuracy is reported
    stalled    finite to the end, but final accuracy below `stalled_below`
    diverged   the loss or the weights became NaN/Inf (at the step given)

A run is "good" if it ended with test accuracy >= `good_accuracy`. The claim
holds if BN's good learning rates form a wider range than the baseline's and
reach a higher rate.
"""

import csv
import io
import math
import os

from bn_zoo.training import workdir as workdir_lib

COLUMNS = ("network", "learning_rate", "status", "diverged_at_step", "final_accuracy",
           "final_accuracy_moving", "max_accuracy", "steps_to_good", "steps", "seconds")


def run_row(network, learning_rate, rows, final, diverged_at, seconds, good_accuracy,
            stalled_below):
    """One CSV row of the sweep from a run's metrics rows and final.json.

    Args:
        rows: the run's metrics rows (`bn_zoo.results.read_metrics`), may be [].
        final: its final.json contents, or None if it diverged.
        diverged_at: the step range text of the divergence, or None.
    """
    accuracies = [(r["step"], r["eval_accuracy"]) for r in rows
                  if r["step"] > 0 and not math.isnan(r.get("eval_accuracy", math.nan))]
    reached = [step for step, value in accuracies if value >= good_accuracy]
    row = {
        "network": network,
        "learning_rate": learning_rate,
        "diverged_at_step": diverged_at if diverged_at is not None else "",
        "max_accuracy": max((v for _, v in accuracies), default=""),
        "steps_to_good": reached[0] if reached else "",
        "seconds": round(seconds, 1),
    }
    if final is None:
        row.update(status="diverged", final_accuracy="", final_accuracy_moving="",
                   steps=accuracies[-1][0] if accuracies else 0)
        return row
    accuracy = final["eval_accuracy"]
    row.update(
        status="stalled" if accuracy < stalled_below else "ok",
        final_accuracy=accuracy,
        final_accuracy_moving=final.get("eval_accuracy_moving", ""),
        steps=final["step"],
    )
    return row


def good_range(rows, network, good_accuracy):
    """(lowest, highest, count) of the learning rates at which `network`
    ended with accuracy >= good_accuracy; (None, None, 0) if none did."""
    good = sorted(r["learning_rate"] for r in rows if r["network"] == network
                  and r["status"] == "ok" and r["final_accuracy"] >= good_accuracy)
    return (good[0], good[-1], len(good)) if good else (None, None, 0)


def claim(rows, baseline, bn, good_accuracy):
    """Whether BN's good learning rates are more and reach higher than the
    baseline's, with both ranges."""
    low_b, high_b, count_b = good_range(rows, baseline, good_accuracy)
    low_n, high_n, count_n = good_range(rows, bn, good_accuracy)
    holds = count_n > count_b and high_n is not None and (high_b is None or high_n > high_b)
    return {"holds": holds, baseline: [low_b, high_b, count_b], bn: [low_n, high_n, count_n]}


def _fmt(value, spec):
    return "" if value in ("", None) else format(value, spec)


def format_table(rows, networks, good_accuracy):
    """A Markdown table: one row per learning rate, the networks side by side."""
    rates = sorted({r["learning_rate"] for r in rows})
    by_key = {(r["network"], r["learning_rate"]): r for r in rows}
    header = ["learning rate"]
    for network in networks:
        header += [f"{network} final accuracy", f"{network} steps to {100 * good_accuracy:g}%"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rate in rates:
        cells = [f"{rate:g}"]
        for network in networks:
            row = by_key.get((network, rate))
            if row is None:
                cells += ["not run", ""]
            elif row["status"] == "diverged":
                cells += [f"diverged (steps {row['diverged_at_step']})", "never"]
            else:
                text = f"{100 * row['final_accuracy']:.2f}%"
                cells += [text + (" (stalled)" if row["status"] == "stalled" else ""),
                          _fmt(row["steps_to_good"], "d") or "never"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows, path):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    workdir_lib.atomic_write(path, buffer.getvalue().encode())


def plot(rows, networks, path, good_accuracy, num_train_steps, labels=None):
    """(a) final test accuracy and (b) steps to `good_accuracy` against the
    learning rate (log scale), one curve per network; diverged runs are
    crosses on the axis, runs that never got there triangles at the top."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels = labels or {}
    fig, (ax_acc, ax_steps) = plt.subplots(1, 2, figsize=(12, 4.2))
    for network, color in zip(networks, ("tab:blue", "tab:red")):
        label = labels.get(network, network)
        mine = sorted((r for r in rows if r["network"] == network),
                      key=lambda r: r["learning_rate"])
        finite = [r for r in mine if r["status"] != "diverged"]
        ax_acc.plot([r["learning_rate"] for r in finite], [r["final_accuracy"] for r in finite],
                    "o-", color=color, label=label)
        diverged = [r["learning_rate"] for r in mine if r["status"] == "diverged"]
        if diverged:
            ax_acc.plot(diverged, [0.0] * len(diverged), "x", color=color, markersize=10,
                        markeredgewidth=2, label=f"{label}: diverged (NaN)")
        reached = [r for r in mine if r["steps_to_good"] != ""]
        ax_steps.plot([r["learning_rate"] for r in reached],
                      [r["steps_to_good"] for r in reached], "o-", color=color, label=label)
        never = [r["learning_rate"] for r in mine if r["steps_to_good"] == ""]
        if never:
            ax_steps.plot(never, [num_train_steps * 1.05] * len(never), "^", color=color,
                          markersize=8, label=f"{label}: never (or diverged)")
    ax_acc.axhline(good_accuracy, color="gray", linestyle=":", linewidth=1)
    ax_acc.set(xscale="log", xlabel="base learning rate", ylabel="final test accuracy",
               ylim=(-0.03, 1.0), title=f"(a) test accuracy after {num_train_steps:,} steps")
    ax_steps.set(xscale="log", xlabel="base learning rate",
                 ylabel=f"steps to {100 * good_accuracy:g}% test accuracy",
                 ylim=(0, num_train_steps * 1.12),
                 title=f"(b) steps to {100 * good_accuracy:g}%")
    for ax in (ax_acc, ax_steps):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left" if ax is ax_acc else "upper left")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    workdir_lib.atomic_write(os.fspath(path), buffer.getvalue())
