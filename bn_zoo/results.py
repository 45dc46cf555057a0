"""Figure 3 of the paper from trainer workdirs: the table and the plot.

Figure 3 (Section 4.2.2) compares the Inception variants by "the number of
training steps required to reach the maximum accuracy of Inception (72.2%),
and the maximum accuracy achieved by the network"; Figure 2 plots their
validation accuracy against the number of training steps. Both are computed
here from the `metrics.csv` of one or more runs (one workdir each, written by
`bn_zoo.training.train`):

    runs = results.read_runs(["workdirs/inception", "workdirs/bn_x5"])
    table = results.figure3_table(runs, baseline="inception")
    print(results.format_table(table))
    results.plot(runs, "figure3.png", target=table[0]["target"])

A run's accuracy is only known at its evaluation steps, so "steps to reach"
is the first evaluation step at which the accuracy is at least the target.
"""

import io
import math
import os

import numpy as np

from bn_zoo.training import workdir as workdir_lib

METRICS_FILE = workdir_lib.METRICS_FILE
CONFIG_FILE = workdir_lib.CONFIG_FILE
FINAL_FILE = workdir_lib.FINAL_FILE


def read_metrics(path):
    """Rows of a metrics CSV as dicts of floats (`step` an int; empty cells
    NaN), sorted by step."""
    return sorted(workdir_lib.read_csv(path), key=lambda r: r["step"])


def read_run(workdir):
    """One run: `{"name", "workdir", "model", "rows", "finished"}`.

    `name` is the workdir's base name, `model` the `model.name` of its
    `config.json` (None without one), `finished` whether its `final.json`
    is there (a run that diverged or was stopped has none).

    Raises:
        FileNotFoundError: the workdir has no metrics.csv.
    """
    workdir = os.path.abspath(os.path.expanduser(os.fspath(workdir)))
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{workdir} has no {METRICS_FILE}: it is not a trainer workdir, or the run has "
            "not evaluated yet. Pass the directories given as --workdir to trainers.train.")
    config = workdir_lib.read_json(os.path.join(workdir, CONFIG_FILE)) or {}
    return {
        "name": os.path.basename(workdir.rstrip(os.sep)),
        "workdir": workdir,
        "model": (config.get("model") or {}).get("name"),
        "rows": read_metrics(path),
        "finished": os.path.exists(os.path.join(workdir, FINAL_FILE)),
    }


def _paper_order(path):
    from bn_zoo.models import registry

    name = os.path.basename(path)
    order = registry.PAPER_ORDER
    return (order.index(name), "") if name in order else (len(order), name)


def find_workdirs(root):
    """The run directories directly under `root` (those with a metrics.csv),
    or `[root]` if `root` is a run itself. Runs named after registered models
    come first, in the paper's order; then the others, by name."""
    root = os.path.abspath(os.path.expanduser(os.fspath(root)))
    if os.path.exists(os.path.join(root, METRICS_FILE)):
        return [root]
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root} is not a directory.")
    found = sorted((os.path.join(root, d) for d in os.listdir(root)
                    if os.path.exists(os.path.join(root, d, METRICS_FILE))), key=_paper_order)
    if not found:
        raise FileNotFoundError(f"No run under {root}: no */{METRICS_FILE}.")
    return found


def read_runs(workdirs):
    """`read_run` of each workdir, in order; the names must be distinct."""
    runs = [read_run(w) for w in workdirs]
    names = [r["name"] for r in runs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Two runs share the name(s) {duplicates}: the table names runs by "
                         "their workdir's base name, so give them distinct ones.")
    return runs


def _points(rows, column):
    return [(r["step"], r[column]) for r in rows
            if column in r and not math.isnan(r[column])]


def steps_to_reach(rows, target, column="eval_accuracy"):
    """The first evaluation step at which `column` >= `target`, or None."""
    for step, value in _points(rows, column):
        if value >= target:
            return step
    return None


def max_accuracy(rows, column="eval_accuracy"):
    """`(maximum, first step reaching it)` of `column`, or `(None, None)`."""
    points = _points(rows, column)
    if not points:
        return None, None
    best = max(value for _, value in points)
    return best, next(step for step, value in points if value == best)


def figure3_table(runs, target=None, baseline=None, column="eval_accuracy"):
    """Figure 3's table: per run, the steps to reach `target` and the maximum.

    Args:
        runs: From `read_runs`.
        target: The accuracy to reach (a fraction). None: the maximum
            accuracy of the `baseline` run, as Figure 3 uses Inception's.
        baseline: Name of the reference run; its steps to the target give
            every run's `speedup` (baseline steps / run steps).
        column: The metrics column holding the accuracy.

    Returns:
        A list of dicts, one per run in order: name, model, steps_to_target
        (None if never reached), speedup (None if unknown), max_accuracy,
        max_step, final_step, final_accuracy, finished, target.
    """
    by_name = {r["name"]: r for r in runs}
    if baseline is not None and baseline not in by_name:
        raise ValueError(f"No run named {baseline!r} for the baseline; the runs are "
                         f"{sorted(by_name)}.")
    if target is None:
        if baseline is None:
            raise ValueError("Give a target accuracy, or a baseline run whose maximum "
                             "accuracy is the target (Figure 3 uses Inception's).")
        target, _ = max_accuracy(by_name[baseline]["rows"], column)
        if target is None:
            raise ValueError(f"The baseline run {baseline!r} has no {column} values.")
    if not 0.0 < target <= 1.0:
        raise ValueError(f"The target accuracy must be in (0, 1]; got {target!r}.")
    base_steps = steps_to_reach(by_name[baseline]["rows"], target, column) if baseline else None
    table = []
    for run in runs:
        steps = steps_to_reach(run["rows"], target, column)
        best, best_step = max_accuracy(run["rows"], column)
        points = _points(run["rows"], column)
        speedup = None
        if base_steps and steps:
            speedup = base_steps / steps
        table.append({
            "name": run["name"],
            "model": run["model"],
            "steps_to_target": steps,
            "speedup": speedup,
            "max_accuracy": best,
            "max_step": best_step,
            "final_step": run["rows"][-1]["step"] if run["rows"] else None,
            "final_accuracy": points[-1][1] if points else None,
            "finished": run["finished"],
            "target": target,
        })
    return table


def _pct(value):
    return "—" if value is None else f"{100 * value:.2f}%"


def format_table(table, notes=None):
    """Figure 3's table as Markdown text. `notes`: optional {name: text}."""
    target = table[0]["target"] if table else 0.0
    lines = [
        f"| run | model | steps to {100 * target:.2f}% | speedup | max accuracy "
        "(at step) | last step | note |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in table:
        note = (notes or {}).get(row["name"], "")
        if not row["finished"] and not note:
            note = f"stopped at step {row['final_step']}"
        steps = "not reached" if row["steps_to_target"] is None else f"{row['steps_to_target']:,}"
        speedup = "—" if row["speedup"] is None else f"{row['speedup']:.1f}×"
        best = _pct(row["max_accuracy"])
        if row["max_step"] is not None:
            best += f" ({row['max_step']:,})"
        last = "—" if row["final_step"] is None else f"{row['final_step']:,}"
        lines.append(f"| {row['name']} | {row['model'] or '—'} | {steps} | {speedup} | "
                     f"{best} | {last} | {note} |")
    return "\n".join(lines)


def paper_table(names):
    """The paper's Figure 3 for registered models among `names`:
    {name: (steps to 72.2%, max accuracy)}."""
    import bn_zoo

    known = set(bn_zoo.list_models())
    out = {}
    for name in names:
        if name in known:
            results = bn_zoo.model_info(name).paper_results
            if results.get("max_accuracy") is not None:
                out[name] = (results.get("steps_to_72_2"), results["max_accuracy"])
    return out


def plot(runs, path, target=None, column="eval_accuracy", title=None):
    """Accuracy against training steps for all runs (Figure 2's style),
    with the target as a dotted line; a PNG written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.get_cmap("tab10")
    for index, run in enumerate(runs):
        points = _points(run["rows"], column)
        if not points:
            continue
        steps, values = np.array(points).T
        label = run["name"] if run["finished"] else f"{run['name']} (stopped)"
        ax.plot(steps, values, label=label, color=colors(index % 10), linewidth=1.6)
    if target is not None:
        ax.axhline(target, color="gray", linestyle=":", linewidth=1.2,
                   label=f"target {100 * target:.2f}%")
    ax.set_xlabel("Training steps")
    ax.set_ylabel(column.replace("_", " "))
    ax.set_ylim(0.0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    workdir_lib.atomic_write(path, buffer.getvalue())
    return path


def _row(table, name):
    return next((row for row in table if row["name"] == name), None)


def check_claims(table, baseline="inception", bn_runs=("bn_baseline", "bn_x5", "bn_x30"),
                 high_rate="inception_x5_lr", sigmoid="inception_sigmoid",
                 bn_sigmoid="bn_x5_sigmoid", chance=0.1):
    """The claims of Section 4.2.2 that a Figure 3 table can check.

    1. Each BN network reaches the baseline's maximum accuracy (the target)
       in fewer steps than the baseline ("Batch Normalization ... matches
       its accuracy using only 7% of the training steps").
    2. Inception without BN at BN-x5's learning rate diverges or does worse
       than at its own ("the model parameters reached machine infinity").
    3. Inception with sigmoid and without BN stays near chance (at most
       twice `chance`), while BN-x5-Sigmoid trains (at least 5× chance).
    4. BN-x30 ends above BN-x5 (74.8% vs 73.0%) though BN-x5 is faster to
       the target (2.1M vs 2.7M steps).

    Claims whose runs are not in the table are left out.

    Returns:
        A list of `{"claim", "holds", "detail"}`.
    """
    claims = []
    base = _row(table, baseline)

    def fmt_steps(row):
        return "never" if row["steps_to_target"] is None else f"step {row['steps_to_target']:,}"

    if base is not None:
        for name in bn_runs:
            row = _row(table, name)
            if row is None:
                continue
            holds = row["steps_to_target"] is not None and (
                base["steps_to_target"] is None or row["steps_to_target"] < base["steps_to_target"])
            claims.append({
                "claim": f"{name} reaches {baseline}'s max accuracy in fewer steps",
                "holds": holds,
                "detail": f"{name}: {fmt_steps(row)}, {baseline}: {fmt_steps(base)}"})
        row = _row(table, high_rate)
        if row is not None:
            diverged = not row["finished"]
            worse = row["max_accuracy"] is None or row["max_accuracy"] < base["max_accuracy"]
            detail = (f"stopped at step {row['final_step']:,} (non-finite loss)" if diverged
                      else f"max {_pct(row['max_accuracy'])} vs {baseline}'s "
                           f"{_pct(base['max_accuracy'])}")
            claims.append({"claim": f"{high_rate} (Inception at BN-x5's rate) diverges or "
                                    f"trains worse than {baseline}",
                           "holds": diverged or worse, "detail": detail})
    row, bn_row = _row(table, sigmoid), _row(table, bn_sigmoid)
    if row is not None:
        claims.append({"claim": f"{sigmoid} (sigmoid, no BN) stays near chance "
                                f"(max <= {_pct(2 * chance)})",
                       "holds": row["max_accuracy"] is not None
                       and row["max_accuracy"] <= 2 * chance,
                       "detail": f"max {_pct(row['max_accuracy'])}"})
    if bn_row is not None:
        claims.append({"claim": f"{bn_sigmoid} (sigmoid with BN) trains "
                                f"(max >= {_pct(5 * chance)})",
                       "holds": bn_row["max_accuracy"] is not None
                       and bn_row["max_accuracy"] >= 5 * chance,
                       "detail": f"max {_pct(bn_row['max_accuracy'])}"})
    x5, x30 = _row(table, "bn_x5"), _row(table, "bn_x30")
    if x5 is not None and x30 is not None:
        claims.append({"claim": "bn_x30 reaches a higher max accuracy than bn_x5",
                       "holds": (x30["max_accuracy"] or 0) > (x5["max_accuracy"] or 0),
                       "detail": f"bn_x30 {_pct(x30['max_accuracy'])}, "
                                 f"bn_x5 {_pct(x5['max_accuracy'])}"})
        claims.append({"claim": "bn_x5 reaches the target in fewer steps than bn_x30",
                       "holds": x5["steps_to_target"] is not None and (
                           x30["steps_to_target"] is None
                           or x5["steps_to_target"] < x30["steps_to_target"]),
                       "detail": f"bn_x5: {fmt_steps(x5)}, bn_x30: {fmt_steps(x30)}"})
    return claims


def format_claims(claims):
    return "\n".join(f"- [{'x' if c['holds'] else ' '}] {c['claim']}: {c['detail']}"
                     for c in claims)
