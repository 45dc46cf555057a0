"""The learning-rate sweep of Section 3.3: run, summary, table and plot.

Section 3.3: "Batch Normalization enables higher learning rates." A sweep
trains the same network with and without BN at several base learning rates
(`run_sweep`, configs/lr_sweep.py); each run ends in one of three states:

    ok         finite to the end; its final test accuracy is reported
    stalled    finite to the end, but final accuracy below `stalled_below`
    diverged   the loss or the weights became NaN/Inf (at the step given)

A run is "good" if it ended with test accuracy >= `good_accuracy`. The claim
holds if BN's good learning rates form a wider range than the baseline's and
reach a higher rate.
"""

import math
import os
import re
import time

import ml_collections

from bn_zoo import runs
from bn_zoo.paper import plotting
from bn_zoo.training.errors import ConfigError

COLUMNS = ("network", "learning_rate", "status", "diverged_at_step", "final_accuracy",
           "final_accuracy_moving", "max_accuracy", "steps_to_good", "steps", "seconds")
# The fields of configs/lr_sweep.py besides `train` (a trainer config).
CONFIG_DOCS = {
    "networks": "The two models trained, the baseline first, then the BN network.",
    "learning_rates": ("Base learning rates of the sweep (replace "
                       "train.optimizer.base_learning_rate; the recipe's decay applies)."),
    "good_accuracy": "A run is good if its final test accuracy is at least this.",
    "stalled_below": "A finite run ending below this test accuracy is marked stalled.",
}
DIVERGED_FILE = "diverged.json"  # In a run's directory: why and when it diverged.


def check_config(config):
    """Raises ConfigError unless `config.networks` names two models and
    `config.learning_rates` are distinct positive numbers."""
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
    """The directory of one run: workdir/<network>/lr_<rate>."""
    return os.path.join(workdir, network, f"lr_{rate:g}")


def _train_one(config, network, rate, directory):
    """Trains (or resumes) one run; returns (final or None, diverged_at or None)."""
    from absl import logging

    from bn_zoo import training

    marker = os.path.join(directory, DIVERGED_FILE)
    previous = runs.read_json(marker)
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
        runs.write_json(marker, {"steps": steps, "error": str(error)})
        return None, steps


def run_sweep(config, workdir):
    """Trains (or resumes) every run, writes workdir/lr_sweep.{csv,png,md,json};
    returns (the report's text, the claim dict).

    Finished and diverged runs are not trained again."""
    import keras

    check_config(config)
    start = time.perf_counter()
    rows = []
    for network in config.networks:
        for rate in config.learning_rates:
            directory = run_dir(workdir, network, rate)
            run_start = time.perf_counter()
            final, diverged_at = _train_one(config, network, rate, directory)
            rows.append(run_row(
                network, float(rate), runs.read_metrics(directory), final, diverged_at,
                time.perf_counter() - run_start, config.good_accuracy, config.stalled_below))
            keras.backend.clear_session()
    baseline, bn = config.networks
    result = claim(rows, baseline, bn, config.good_accuracy)
    steps = config.train.num_train_steps
    write_csv(rows, os.path.join(workdir, "lr_sweep.csv"))
    plot(rows, config.networks, os.path.join(workdir, "lr_sweep.png"),
         config.good_accuracy, steps)
    table = format_table(rows, config.networks, config.good_accuracy)

    def good(network):
        low, high, count = result[network]
        return (f"{network}: good (>= {100 * config.good_accuracy:g}%) at {count} rate(s)"
                + (f", {low:g} to {high:g}" if count else ""))

    elapsed = time.perf_counter() - start
    text = (f"Learning-rate sweep, {steps:,} steps per run (Section 3.3):\n\n{table}\n\n"
            f"{good(baseline)}; {good(bn)}.\n"
            f"Claim (BN's good range is wider and reaches higher): "
            f"{'holds' if result['holds'] else 'does NOT hold'} in this sweep.\n"
            f"Time: {elapsed:.0f} s for {len(rows)} runs.")
    runs.atomic_write(os.path.join(workdir, "lr_sweep.md"), (text + "\n").encode())
    runs.write_json(os.path.join(workdir, "lr_sweep.json"),
                    {"claim": result, "rows": rows, "seconds": round(elapsed, 1)})
    return text, result


def describe(config, overridden, filename):
    """The --print_config text: CONFIG_DOCS' fields and the trainer config
    (as for the BN network), resolved.

    Args:
        overridden: dotted paths set on the command line.
        filename: the --config value, for the header.
    """
    from bn_zoo.training import describe as describe_lib

    check_config(config)
    run_config = ml_collections.ConfigDict(config.train.to_dict())
    run_config.model.name = config.networks[1]
    header = (f"Config {filename}, resolved (train: as for {config.networks[1]}; "
              "base_learning_rate is replaced by each rate of learning_rates). Override "
              "any field with --config.<field>=<value>.")
    fields = (describe_lib.plain_fields(config, CONFIG_DOCS, overridden)
              + describe_lib.trainer_fields(run_config, overridden, "train."))
    return describe_lib.format_fields(fields, header)


def run_row(network, learning_rate, rows, final, diverged_at, seconds, good_accuracy,
            stalled_below):
    """One CSV row of the sweep from a run's metrics rows and final.json.

    Args:
        rows: the run's metrics rows (`bn_zoo.runs.read_metrics`), may be [].
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
    """The sweep's rows as a CSV of COLUMNS (written atomically)."""
    runs.write_csv(path, rows, COLUMNS)


def plot(rows, networks, path, good_accuracy, num_train_steps, labels=None):
    """(a) final test accuracy and (b) steps to `good_accuracy` against the
    learning rate (log scale), one curve per network; diverged runs are
    crosses on the axis, runs that never got there triangles at the top."""
    plt = plotting.pyplot()
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
    plotting.save_png(fig, path, dpi=100)
