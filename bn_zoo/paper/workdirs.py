"""The run directories an experiment compares: found under a root, read back.

A run directory is what `bn_zoo.training.train` writes under `--workdir`
(`bn_zoo.runs` reads its files: `read_metrics`, `read_config`, `read_final`).
This module adds what the paper's tables need on top: the runs under a root
in the paper's order (`find_workdirs`) and each run as one record
(`read_run`, `read_runs`).
"""

import os

from bn_zoo import runs as runs_lib
from bn_zoo.runs import FINAL_FILE, METRICS_FILE


def read_run(workdir):
    """One run: `{"name", "workdir", "model", "rows", "finished"}`.

    `name` is the workdir's base name, `model` the `model.name` of its
    `config.json` (None without one), `rows` its metrics.csv
    (`bn_zoo.runs.read_metrics`), `finished` whether its `final.json` is
    there (a run that diverged or was stopped has none).

    Raises:
        FileNotFoundError: the workdir has no metrics.csv.
    """
    workdir = os.path.abspath(os.path.expanduser(os.fspath(workdir)))
    if not os.path.exists(os.path.join(workdir, METRICS_FILE)):
        raise FileNotFoundError(
            f"{workdir} has no {METRICS_FILE}: it is not a trainer workdir, or the run has "
            "not evaluated yet. Pass the directories given as --workdir to trainers.train.")
    run = runs_lib.RunDir(workdir)
    config = run.read_config() or {}
    return {
        "name": os.path.basename(run.path.rstrip(os.sep)),
        "workdir": run.path,
        "model": (config.get("model") or {}).get("name"),
        "rows": run.read_metrics(),
        "finished": os.path.exists(run.file(FINAL_FILE)),
    }


def _paper_order(path):
    from bn_zoo.models import zoo

    name = os.path.basename(path)
    order = zoo.PAPER_ORDER
    return (order.index(name), "") if name in order else (len(order), name)


def find_workdirs(root):
    """The run directories directly under `root` (those with a metrics.csv),
    or `[root]` if `root` is a run itself. Runs named after registered models
    come first, in the paper's order; then the others, by name.

    Raises:
        FileNotFoundError: `root` is not a directory, or holds no run.
    """
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
    """`read_run` of each workdir, in order.

    Raises:
        ValueError: two workdirs share a base name (the tables name runs by it).
    """
    runs = [read_run(w) for w in workdirs]
    names = [r["name"] for r in runs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Two runs share the name(s) {duplicates}: the table names runs by "
                         "their workdir's base name, so give them distinct ones.")
    return runs
