"""The layout of a run directory, and its config, metrics and final files.

    RUN_DIR/
      config.json        the resolved config (every field has a value)
      metrics.csv        one row per evaluation step
      final.json         written at the end: final accuracies, which BN
                         statistics inference uses
      labels.txt         the class names, one per line in output order
                         (`write_class_names`, `read_class_names`)
      checkpoints/       tf.train.CheckpointManager: ckpt-<step>.{index,data-*},
                         the training state exactly as training left it
      population/        ckpt-<step>: the model with Algorithm 2's population
                         statistics of the end of the run (population_batches)
      tensorboard/       event files (train/ and eval/)

Only the chief process of a multi-worker run writes these files; every write
is atomic (`bn_zoo.runs.files`).
"""

import csv
import io
import json
import os
import shutil

from bn_zoo.runs import files

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
FINAL_FILE = "final.json"
LABELS_FILE = "labels.txt"
CHECKPOINTS_DIR = "checkpoints"
POPULATION_DIR = "population"
TENSORBOARD_DIR = "tensorboard"


class WorkdirError(ValueError):
    """The run directory (`--workdir`) cannot be used: it is not a run, has no
    checkpoint, none of its checkpoints can be read, or it holds a run that
    the command cannot continue."""


class RunDir:
    """Paths of a run directory and the checks made before writing to it.

    Args:
        path: The directory (`--workdir`); it need not exist yet.
        chief: Whether this process writes (the chief of a multi-worker run).

    Raises:
        WorkdirError: `path` exists and is not a directory.
    """

    def __init__(self, path, chief=True):
        self.path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        self.chief = chief
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise WorkdirError(f"--workdir={self.path} exists and is not a directory.")

    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def checkpoints(self):
        return self.file(CHECKPOINTS_DIR)

    @property
    def population(self):
        """`population/`: the model with the end-of-run population statistics."""
        return self.file(POPULATION_DIR)

    @property
    def tensorboard(self):
        return self.file(TENSORBOARD_DIR)

    def read_config(self):
        """The run's config.json as a dict, or None if there is none."""
        return files.read_json(self.file(CONFIG_FILE))

    saved_config = read_config

    def read_final(self):
        """The run's final.json as a dict, or None (an unfinished run)."""
        return files.read_json(self.file(FINAL_FILE))

    def read_metrics(self):
        """The rows of metrics.csv, sorted by step (none without the file)."""
        return sorted(files.read_csv(self.file(METRICS_FILE)), key=lambda r: r["step"])

    def has_checkpoint(self):
        """Whether `checkpoints/` names a checkpoint (CheckpointManager's state)."""
        return os.path.exists(os.path.join(self.checkpoints, "checkpoint"))

    def check_writable(self):
        """Raises WorkdirError, before anything is written, if the directory (or
        the nearest existing directory above it) cannot be written."""
        if not self.chief:
            return
        existing = self.path
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        problem = files.unwritable(existing)
        if problem:
            raise WorkdirError(
                f"--workdir={self.path} cannot be written: {existing} {problem}. "
                "Nothing was written. Pass a --workdir on a writable file system.")

    def footprint(self):
        """What is there before a run writes: restore it with `roll_back`."""
        if not os.path.isdir(self.path):
            return None
        return set(os.listdir(self.path))

    def roll_back(self, footprint):
        """Removes what a run that saved no checkpoint created: the directory if
        it did not exist (`footprint` None), else the entries it added."""
        if not self.chief or self.has_checkpoint() or not os.path.isdir(self.path):
            return
        if footprint is None:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for name in set(os.listdir(self.path)) - footprint:
            path = self.file(name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)

    def start_afresh(self):
        """Removes the metrics and TensorBoard events of a run that stopped
        before its first checkpoint, so a new start does not add to them."""
        if not self.chief:
            return
        for name in (METRICS_FILE, FINAL_FILE):
            if os.path.exists(self.file(name)):
                os.remove(self.file(name))
        shutil.rmtree(self.tensorboard, ignore_errors=True)
        shutil.rmtree(self.population, ignore_errors=True)

    def write_config(self, config):
        """Writes config.json (chief only); `config` a ConfigDict or dict."""
        if self.chief:
            files.write_json(self.file(CONFIG_FILE), to_json_dict(config))

    def write_final(self, final):
        """Writes final.json (chief only)."""
        if self.chief:
            files.write_json(self.file(FINAL_FILE), final)


def to_json_dict(config):
    """A JSON-compatible plain dict of a `ConfigDict` or dict (tuples become
    lists), as config.json holds it."""
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    return json.loads(json.dumps(config))


def read_config(run_dir):
    """The config.json of a run directory, as a dict.

    Raises:
        WorkdirError: `run_dir` has no config.json (it is not a run directory).
    """
    run = RunDir(run_dir)
    config = run.read_config()
    if config is None:
        raise WorkdirError(
            f"{run.path} has no {CONFIG_FILE}: not a trainer workdir. Pass a directory "
            "given as --workdir to trainers.train.")
    return config


def read_final(run_dir):
    """The final.json of a run directory, or None if the run has not finished."""
    return RunDir(run_dir).read_final()


def read_metrics(run_dir):
    """The metrics.csv rows of a run directory (dicts of floats, `step` an
    int, empty cells NaN), sorted by step; no rows without the file."""
    return RunDir(run_dir).read_metrics()


# Characters str.splitlines() breaks at: a class name must hold none of them.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def write_class_names(run_dir, class_names):
    """Writes the run's class names to `RUN_DIR/labels.txt`, atomically.

    The file holds one name per line, in output order (name i is the class
    of output column i), UTF-8, each line ending in a newline: the format of
    TFLite's label files and of the `labels.txt` every export carries.

    Args:
        run_dir: The run directory (created if needed).
        class_names: A sequence of non-empty strings without line breaks.

    Returns:
        The path of the file written.

    Raises:
        TypeError: `class_names` is not a sequence of strings.
        ValueError: no name, an empty name or one holding a line break;
            nothing is written.
    """
    if isinstance(class_names, (str, bytes)) or not hasattr(class_names, "__iter__"):
        raise TypeError("`class_names` must be a sequence of strings, one per output "
                        f"column. Received: {class_names!r:.80}")
    names = tuple(class_names)
    if not names:
        raise ValueError("`class_names` is empty; give one name per output column.")
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"Class name {index} must be a string. Received: {name!r} "
                            f"({type(name).__name__}).")
        if not name.strip():
            raise ValueError(f"Class name {index} is empty; every class needs a name.")
        if any(c in name for c in _LINE_BREAKS):
            raise ValueError(f"Class name {index} holds a line break, which {LABELS_FILE} "
                             f"(one name per line) cannot hold. Received: {name!r}")
    path = RunDir(run_dir).file(LABELS_FILE)
    files.atomic_write(path, "".join(f"{name}\n" for name in names).encode("utf-8"))
    return path


def read_class_names(run_dir):
    """The class names recorded in `RUN_DIR/labels.txt`, a tuple of strings
    in output order, or None if the run recorded none.

    Raises:
        WorkdirError: the file is not UTF-8 text, names no class, or has a
            blank line between names.
    """
    path = RunDir(run_dir).file(LABELS_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as error:
        raise WorkdirError(f"{path} is not UTF-8 text ({error.reason} at byte "
                           f"{error.start}); write one class name per line, UTF-8.") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise WorkdirError(f"{path} names no class; write one class name per line.")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise WorkdirError(f"Line {number} of {path} is blank; every output column "
                               "needs a name (one per line, in output order).")
    return tuple(lines)


def model_name(run_dir):
    """The `model.name` of a run directory's config.json (a registered name,
    or `"package.module:function"` for a model of your own).

    Raises:
        WorkdirError: no config.json, or one that names no model.
    """
    config = read_config(run_dir)
    name = (config.get("model") or {}).get("name")
    if not isinstance(name, str):
        raise WorkdirError(f"{RunDir(run_dir).file(CONFIG_FILE)} names no model "
                           "(no model.name).")
    return name


class MetricsLog:
    """`metrics.csv`: one row per evaluation step, rewritten atomically.

    On resume from step s, rows after s (written after the last checkpoint by
    a run that was then killed) are dropped, so no evaluation point appears
    twice or is skipped; a run with no checkpoint to resume starts the file
    afresh (`truncate(-1)`). Rows read from the file are written back as
    they were (an empty cell stays empty).
    """

    def __init__(self, path, columns, chief=True):
        self.path = path
        self.columns = list(columns)
        self.chief = chief
        self.rows = files.read_csv(path)
        self._lines = _data_lines(path)  # The text of each row read.

    def truncate(self, step):
        """Drops the rows after `step`."""
        kept = [i for i, r in enumerate(self.rows) if r["step"] <= step]
        if len(kept) != len(self.rows):
            self.rows = [self.rows[i] for i in kept]
            self._lines = [self._lines[i] for i in kept]
            self._write()

    def append(self, row):
        self.rows.append(dict(row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, restval="",
                                lineterminator="\n")
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        self._lines.append(buffer.getvalue())
        self._write()

    def _write(self):
        if self.chief:
            files.atomic_write(self.path, ",".join(self.columns) + "\n" + "".join(self._lines))


def _data_lines(path):
    """The text of each data row of a CSV file (none if it is absent)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        lines = f.read().splitlines(keepends=True)[1:]
    return [line if line.endswith("\n") else line + "\n" for line in lines if line.strip()]
