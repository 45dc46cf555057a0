"""Figure 3 of the paper (Section 4.2.2): the table, the claims, the plot, and
the CPU-scale ablation that trains its runs.

Figure 3 compares the Inception variants by "the number of training steps
required to reach the maximum accuracy of Inception (72.2%), and the maximum
accuracy achieved by the network"; Figure 2 plots their validation accuracy
against the number of training steps. Both are computed here from the
`metrics.csv` of one or more runs (one workdir each, written by
`bn_zoo.training.train`):

    from bn_zoo.paper import figure3, workdirs
    found = workdirs.read_runs(["workdirs/inception", "workdirs/bn_x5"])
    table = figure3.figure3_table(found, baseline="inception")
    print(figure3.format_table(table))
    figure3.plot(found, "figure3.png", target=table[0]["target"])

`report` is all of it as the text `python -m trainers.figure3` prints.
`run_ablation` trains the CPU-scale runs (configs/figure3_cpu.py, each run a
variant of configs/ablation.py: `bn_zoo.paper.setups.ablation_run`) and
writes the report next to them.

A run's accuracy is only known at its evaluation steps, so "steps to reach"
is the first evaluation step at which the accuracy is at least the target.
"""

import math
import os
import time

import numpy as np

from bn_zoo import runs as runs_lib
from bn_zoo.paper import plotting
from bn_zoo.paper.workdirs import read_runs

# The fields of configs/figure3_cpu.py.
ABLATION_CONFIG_DOCS = {
    "runs": ("The runs, trained one after the other: each is configs/ablation.py:<run> "
             "(print one with python -m trainers.train "
             "--config=configs/ablation.py:<run> --print_config)."),
    "baseline": "The run whose maximum accuracy is the target (Inception, as in Figure 3).",
    "target": "A fixed target accuracy instead (e.g. 0.95); None: the baseline's maximum.",
    "num_train_steps": "Training steps of every run (replaces the run configs' own).",
    "eval_every_steps": ("Evaluation interval of every run; also its steps_per_loop and "
                         "log_every_steps."),
    "data_dir": "TFDS data directory of every run (None: $TFDS_DATA_DIR); --data_dir overrides it.",
}


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
        runs: From `bn_zoo.paper.workdirs.read_runs`.
        target: The accuracy to reach (a fraction). None: the maximum
            accuracy of the `baseline` run, as Figure 3 uses Inception's.
        baseline: Name of the reference run; its steps to the target give
            every run's `speedup` (baseline steps / run steps).
        column: The metrics column holding the accuracy.

    Returns:
        A list of dicts, one per run in order: name, model, steps_to_target
        (None if never reached), speedup (None if unknown), max_accuracy,
        max_step, final_step, final_accuracy, finished, target.

    Raises:
        ValueError: no baseline run of that name, no target and no baseline,
            or a target outside (0, 1].
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
    plt = plotting.pyplot()
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
    return plotting.save_png(fig, path, dpi=120)


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
    """The claims as a Markdown checklist."""
    return "\n".join(f"- [{'x' if c['holds'] else ' '}] {c['claim']}: {c['detail']}"
                     for c in claims)


def report(runs, target=None, baseline="inception", column="eval_accuracy", output=None,
           notes=None):
    """The table, the paper's numbers and the claims as text; plots to
    `output` if given. Returns (text, table, claims).

    `baseline` is ignored when no run has that name."""
    names = [r["name"] for r in runs]
    baseline = baseline if baseline in names else None
    table = figure3_table(runs, target=target, baseline=baseline, column=column)
    lines = [format_table(table, notes)]
    paper = paper_table(r["model"] for r in runs if r["model"])
    if paper:
        lines += ["", "The paper's Figure 3 (ImageNet, batch 32):", "",
                  "| model | steps to 72.2% | max accuracy |", "|---|---:|---:|"]
        for model, (steps, best) in paper.items():
            shown = "—" if steps is None else f"{steps / 1e6:.1f}·10⁶"
            lines.append(f"| {model} | {shown} | {100 * best:.1f}% |")
    claims = check_claims(table, baseline=baseline or "")
    if claims:
        lines += ["", "Claims of Section 4.2.2:", format_claims(claims)]
    if output:
        plot(runs, output, target=table[0]["target"] if table else None, column=column)
        lines += ["", f"Plot: {output}"]
    return "\n".join(lines), table, claims


def ablation_run_configs(config, run_config_of):
    """{run: trainer config} of every run of `config.runs` (configs/figure3_cpu.py),
    with its shared fields (steps, evaluation interval, data directory) applied.

    Args:
        run_config_of: run name -> its trainer config
            (`bn_zoo.paper.setups.ablation_run`, configs/ablation.py's
            `get_config`).

    Raises:
        ConfigError: `run_config_of` does not know a run.
    """
    from bn_zoo.training.errors import ConfigError

    out = {}
    for run in config.runs:
        try:
            run_config = run_config_of(run)
        except ConfigError as error:
            raise ConfigError(f"config.runs names {run!r}: {error}") from None
        run_config.num_train_steps = config.num_train_steps
        for field in ("steps_per_loop", "log_every_steps", "eval_every_steps"):
            run_config[field] = config.eval_every_steps
        if config.data_dir is not None:
            run_config.data.data_dir = config.data_dir
        out[run] = run_config
    return out


def run_ablation(config, workdir, run_config_of, strategy=None):
    """Trains (or resumes) every run of `config` in workdir/<run>, then writes
    workdir/figure3.{png,md,json} and returns the report's text.

    A run whose loss becomes NaN/Inf is recorded as diverged and the next one
    starts. `run_config_of`: as for `ablation_run_configs`; `strategy`
    overrides each run's `strategy`.
    """
    import keras
    from absl import logging

    from bn_zoo import training

    start = time.perf_counter()
    run_configs = ablation_run_configs(config, run_config_of)  # Fail early.
    notes, seconds = {}, {}
    for run, run_config in run_configs.items():
        if strategy is not None:
            run_config.strategy = strategy
        run_start = time.perf_counter()
        try:
            training.train(run_config, os.path.join(workdir, run))
        except training.NonFiniteLossError as error:
            logging.warning("%s diverged: %s", run, error)
            notes[run] = "diverged: loss became NaN/Inf"
        seconds[run] = round(time.perf_counter() - run_start, 1)
        keras.backend.clear_session()
    runs = read_runs([os.path.join(workdir, run) for run in config.runs])
    text, table, claims = report(
        runs, target=config.target, baseline=config.baseline,
        output=os.path.join(workdir, "figure3.png"), notes=notes)
    elapsed = round(time.perf_counter() - start, 1)
    text += f"\n\nTraining time per run (s): {seconds}; total {elapsed:.0f} s."
    runs_lib.atomic_write(os.path.join(workdir, "figure3.md"), text + "\n")
    runs_lib.write_json(os.path.join(workdir, "figure3.json"), {
        "table": table, "claims": claims, "notes": notes, "seconds": seconds,
        "total_seconds": elapsed})
    return text


def describe_ablation(config, overridden, filename):
    """The --print_config text of configs/figure3_cpu.py."""
    from bn_zoo.training import describe

    header = (f"Config {filename} after the command line's overrides "
              "(--config.<field>=<value>).")
    return describe.format_fields(
        describe.plain_fields(config, ABLATION_CONFIG_DOCS, overridden), header)
