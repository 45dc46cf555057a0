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
      run.lock           while a run trains: the host, pid and start time of
                         its process, which holds a flock on it
                         (`bn_zoo.runs.lock`); removed at its end

Only the chief process of a multi-worker run writes these files, and only
while it holds `run.lock`: a second run on the directory is refused. Every
write of config.json, metrics.csv, final.json and labels.txt is atomic
(`bn_zoo.runs.files`); a write that fails (a full disk) leaves the file as it
was. A file found torn anyway (a JSON file that does not parse, a metrics row
cut short) is a `TornFileError` naming it and the fix; the trainer's rerun
repairs what it can (`MetricsLog` drops a cut-short last row).
"""

import csv
import io
import json
import os
import shutil

from bn_zoo.runs import files, labels
from bn_zoo.runs import lock as lock_lib
from bn_zoo.runs.files import TornFileError, WorkdirError  # noqa: F401 - re-exported
from bn_zoo.runs.lock import LOCK_FILE

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
FINAL_FILE = "final.json"
LABELS_FILE = labels.LABELS_FILE
CHECKPOINTS_DIR = "checkpoints"
POPULATION_DIR = "population"
TENSORBOARD_DIR = "tensorboard"

# The fixes a TornFileError of each file names.
_RETRAIN = ("Rerun the command that trained the run (python -m trainers.train with its "
            "--config and --workdir): it resumes from the newest checkpoint and")
CONFIG_FIX = f"{_RETRAIN} writes {CONFIG_FILE} again."
FINAL_FIX = f"{_RETRAIN} writes {FINAL_FILE} again."
METRICS_TORN_FIX = (f"{_RETRAIN} drops the cut row, or delete that line.")
METRICS_FIX = "Fix or delete that line."


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
        """The run's config.json as a dict, or None if there is none.

        Raises:
            TornFileError: it does not parse (naming the file and the fix)."""
        return files.read_json(self.file(CONFIG_FILE), CONFIG_FIX)

    saved_config = read_config

    def read_final(self):
        """The run's final.json as a dict, or None (an unfinished run).

        Raises:
            TornFileError: it does not parse (naming the file and the fix)."""
        return files.read_json(self.file(FINAL_FILE), FINAL_FIX)

    def read_metrics(self):
        """The rows of metrics.csv, sorted by step (none without the file).

        Raises:
            TornFileError: a row is cut short or malformed (naming the file,
                the line and the fix)."""
        path = self.file(METRICS_FILE)
        table = files.parse_csv(path)
        if table.problem is not None:
            raise TornFileError(path, table.problem,
                                METRICS_TORN_FIX if table.torn_tail else METRICS_FIX)
        return sorted(table.rows, key=lambda r: r["step"])

    def lock(self):
        """The run's lock (`bn_zoo.runs.lock.RunLock`, a context manager):
        held by the process that writes the run, from before its first write
        to its end; a no-op lock for the other workers of a multi-worker run.
        Its `acquire` raises WorkdirError, naming the holder, while another
        live process holds it."""
        return lock_lib.RunLock(self.path) if self.chief else lock_lib.NoLock()

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
        it did not exist (`footprint` None), else the entries it added. The
        lock file stays for its holder to remove (`RunLock.release`, which
        then removes the directory it created)."""
        if not self.chief or self.has_checkpoint() or not os.path.isdir(self.path):
            return
        for name in set(os.listdir(self.path)) - (footprint or set()) - {LOCK_FILE}:
            path = self.file(name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
        if footprint is None:
            try:
                os.rmdir(self.path)  # Held by no lock: nothing is left in it.
            except OSError:
                pass

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
        TornFileError: its config.json does not parse.
    """
    run = RunDir(run_dir)
    config = run.read_config()
    if config is None:
        raise WorkdirError(
            f"{run.path} has no {CONFIG_FILE}: not a trainer workdir. Pass a directory "
            "given as --workdir to trainers.train.")
    return config


def read_final(run_dir):
    """The final.json of a run directory, or None if the run has not finished.

    Raises:
        TornFileError: its final.json does not parse.
    """
    return RunDir(run_dir).read_final()


def read_metrics(run_dir):
    """The metrics.csv rows of a run directory (dicts of floats, `step` an
    int, empty cells NaN), sorted by step; no rows without the file.

    Raises:
        TornFileError: a row is cut short or malformed.
    """
    return RunDir(run_dir).read_metrics()


def write_class_names(run_dir, class_names):
    """Writes the run's class names to `RUN_DIR/labels.txt`, atomically, in
    the format of `bn_zoo.runs.labels` (one name per line, output order).

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
    names = labels.check_names(class_names)
    path = RunDir(run_dir).file(LABELS_FILE)
    files.atomic_write(path, labels.labels_text(names).encode("utf-8"))
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
        return labels.read_labels(path)
    except ValueError as error:
        raise WorkdirError(str(error)) from None


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

    Reading happens here, writing at `truncate` and `append`: a file whose
    last row is cut short (`files.parse_csv`) loses that row at the first
    write (`dropped` says what it was), one with a malformed row elsewhere
    is refused here.

    Raises:
        TornFileError: a malformed row that is not the cut-short last one.
    """

    def __init__(self, path, columns, chief=True):
        self.path = path
        self.columns = list(columns)
        self.chief = chief
        table = files.parse_csv(path)
        self.dropped = None  # What was wrong with a cut-short last row dropped.
        if table.problem is not None:
            if not table.torn_tail:
                raise TornFileError(path, table.problem, METRICS_FIX)
            self.dropped = table.problem
        self.rows = table.rows
        self._lines = table.lines  # The text of each row read.

    def truncate(self, step):
        """Drops the rows after `step` (and a cut-short last row)."""
        kept = [i for i, r in enumerate(self.rows) if r["step"] <= step]
        if len(kept) != len(self.rows) or self.dropped is not None:
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

