"""Figure 1 of the paper (Section 4.1): train, plot, summarize.

(a) Test accuracy of the MNIST network trained with and without Batch
Normalization, against the number of training steps. (b, c) The evolution of
the input distribution to a typical sigmoid of the last hidden layer, as its
{15, 50, 85}th percentiles: (b) without BN, (c) with BN.

`run_figure1(config, workdir)` trains both networks of `config`
(configs/figure1.py: `networks`, the shared trainer config `train`, the
`targets`) in workdir/<network>, then writes workdir/figure1.png,
workdir/metrics.csv (both runs, with a `network` column) and
workdir/summary.json, and returns the summary. `rows` arguments below are the
rows of a run's `metrics.csv` (`bn_zoo.runs.read_metrics`).
"""

import math
import os
import time

import ml_collections

from bn_zoo import runs
from bn_zoo.paper import plotting
from bn_zoo.training.errors import ConfigError

_COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange")

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
PLOT_FILE = "figure1.png"
SUMMARY_FILE = "summary.json"


def check_config(config):
    """Raises ConfigError unless `config.networks` names two models."""
    if len(config.networks) != 2:
        raise ConfigError(
            "config.networks must name two models, the baseline then the BN network, "
            f"e.g. ('mlp', 'bn_mlp'); got {tuple(config.networks)!r}."
        )


def network_config(config, network):
    """The trainer config of one network: `config.train` with its model."""
    run_config = ml_collections.ConfigDict(config.train.to_dict())
    run_config.model.name = network
    return run_config


def describe(config, overridden, filename):
    """The --print_config text: the trainer config of each network, resolved,
    and the fields of CONFIG_DOCS.

    Args:
        overridden: dotted paths set on the command line.
        filename: the --config value, for the header.
    """
    from bn_zoo.training import describe as describe_lib

    check_config(config)
    per_network = {network: describe_lib.trainer_fields(
        network_config(config, network), overridden, "train.") for network in config.networks}
    header = (f"Config {filename}, resolved: after the command line's "
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


def run_figure1(config, workdir):
    """Trains (or resumes) both networks, plots Figure 1, returns the summary
    (`summarize`'s, with the `seconds` it took)."""
    from bn_zoo import training

    check_config(config)
    start = time.perf_counter()
    rows, finals = {}, {}
    for network in config.networks:
        run_dir = os.path.join(workdir, network)
        finals[network] = training.train(network_config(config, network), run_dir)
        rows[network] = runs.read_metrics(run_dir)
    baseline, bn = config.networks
    plot(rows[baseline], rows[bn], os.path.join(workdir, PLOT_FILE))
    summary = summarize(rows[baseline], rows[bn], finals[baseline], finals[bn],
                        config.targets.to_dict())
    summary["seconds"] = round(time.perf_counter() - start, 1)
    combined = [{"network": n, **r} for n in config.networks for r in rows[n]]
    columns = ["network"] + list(dict.fromkeys(c for r in combined for c in r if c != "network"))
    runs.write_csv(os.path.join(workdir, runs.METRICS_FILE), combined, columns)
    runs.write_json(os.path.join(workdir, SUMMARY_FILE), summary)
    return summary


def save_weights(config, workdir, weights_dir):
    """Writes each network's trained weights (bn_mlp with its population
    statistics) to <weights_dir>/<network>_mnist.weights.h5
    (`bn_zoo.runs.save_weights`); yields (path, sha256) per network."""
    for network in config.networks:
        path = os.path.join(weights_dir, f"{network}_mnist.weights.h5")
        yield path, runs.save_weights(os.path.join(workdir, network), path)


def _series(rows, column):
    points = [(r["step"], r[column]) for r in rows if not math.isnan(r.get(column, math.nan))]
    return [p[0] for p in points], [p[1] for p in points]


def percentile_columns(rows):
    """The probe columns of a run ('probe_p15', ...), sorted by percentile."""
    columns = [c for c in (rows[0] if rows else {}) if c.startswith("probe_p")]
    return sorted(columns, key=lambda c: float(c[len("probe_p"):]))


def plot(baseline_rows, bn_rows, path, baseline_label="Without BN", bn_label="With BN"):
    """Draws Figure 1 (a, b, c) into a PNG at `path` (written atomically)."""
    plt = plotting.pyplot()
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
    plotting.save_png(fig, path, dpi=100)


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
