"""Deprecated: Figure 3's table and plot moved to `bn_zoo.paper`.

    bn_zoo.results.read_runs, find_workdirs, ...  ->  bn_zoo.paper.workdirs
    bn_zoo.results.read_metrics(csv_path)         ->  bn_zoo.runs.read_metrics(run_dir)
    bn_zoo.results.figure3_table, plot, ...       ->  bn_zoo.paper.figure3

Importing this module warns (DeprecationWarning); its names are the new
homes' functions themselves (`read_metrics` still takes the CSV's path).
"""

import warnings

from bn_zoo.paper.figure3 import (  # noqa: F401
    check_claims,
    figure3_table,
    format_claims,
    format_table,
    max_accuracy,
    paper_table,
    plot,
    steps_to_reach,
)
from bn_zoo.paper.workdirs import find_workdirs, read_run, read_runs  # noqa: F401
from bn_zoo.runs import CONFIG_FILE, FINAL_FILE, METRICS_FILE, read_csv  # noqa: F401

warnings.warn(
    "bn_zoo.results is deprecated: import bn_zoo.paper.workdirs (read_runs, find_workdirs, "
    "read_run), bn_zoo.runs (read_metrics of a run directory) and bn_zoo.paper.figure3 "
    "(figure3_table, format_table, check_claims, plot, ...) instead.",
    DeprecationWarning, stacklevel=2)


def read_metrics(path):
    """Rows of the metrics CSV at `path` (a file), sorted by step; no rows
    without the file. New code: `bn_zoo.runs.read_metrics(run_dir)`."""
    return sorted(read_csv(path), key=lambda r: r["step"])
