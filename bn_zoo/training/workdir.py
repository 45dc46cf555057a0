"""The workdir of one run, and atomic writes into it.

    workdir/
      config.json        the resolved config (every field has a value)
      metrics.csv        one row per evaluation step
      final.json         written at the end: final accuracies, which BN
                         statistics inference uses
      checkpoints/       tf.train.CheckpointManager: ckpt-<step>.{index,data-*}
      tensorboard/       event files (train/ and eval/)

Every file is written to a temporary file in the same directory and renamed
over the old one (`os.replace`), so a run killed at any moment leaves either
the old or the new version, never half of one, with the permissions a plain
write would give. Only the chief process of a multi-worker run writes these
files.
"""

import csv
import errno
import io
import json
import os
import shutil
import stat
import tempfile

from bn_zoo.training import config as config_lib
from bn_zoo.training.errors import WorkdirError

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
FINAL_FILE = "final.json"
CHECKPOINTS_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"


def plain_write_mode(path):
    """The permission bits `open(path, "w")` would leave: those of the file
    if it exists, else 0o666 less the process umask (0o644 under umask 022)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask():
    try:  # Linux: read it without changing it (os.umask would, for all threads).
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def atomic_write(path, data):
    """Writes `data` (str or bytes) to `path` through a temporary file.

    The temporary file gets the permissions a plain write would give
    (`plain_write_mode`; `mkstemp` alone makes it 0o600). On any error the
    temporary file is removed and `path` is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.fchmod(fd, plain_write_mode(path))
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_json(path):
    """The JSON in `path`, or None if there is no such file."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_json(path, value):
    atomic_write(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_csv(path):
    """Rows of a metrics CSV as dicts: numbers as floats (empty cells -> NaN),
    `step` as an int, other text as it is. An absent file gives no rows."""
    if not os.path.exists(path):
        return []

    def parse(value):
        if value == "":
            return float("nan")
        try:
            return float(value)
        except ValueError:
            return value

    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            parsed = {k: parse(v) for k, v in row.items()}
            parsed["step"] = int(parsed["step"])
            rows.append(parsed)
    return rows


def write_csv(path, rows, columns):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write(path, buffer.getvalue())


class Workdir:
    """Paths of a run's workdir and the checks made before writing to it."""

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
    def tensorboard(self):
        return self.file(TENSORBOARD_DIR)

    def saved_config(self):
        return read_json(self.file(CONFIG_FILE))

    def check_config(self, config):
        """Raises WorkdirError if the workdir holds a run of another config.

        Fields in `config_lib.RUNTIME_FIELDS` (e.g. num_train_steps, strategy,
        data_dir) may change between reruns; the others must be equal, unless
        the workdir has no checkpoint (a run stopped before its first one
        left nothing to resume; the new run starts afresh).
        """
        saved = self.saved_config()
        if saved is None:
            if os.path.isdir(self.checkpoints) and os.listdir(self.checkpoints):
                raise WorkdirError(
                    f"{self.path} has checkpoints but no {CONFIG_FILE}, so it cannot "
                    "tell which run they belong to. Use an empty --workdir."
                )
            return
        if not self.has_checkpoint():
            return  # A run stopped before its first checkpoint: nothing to resume.
        differ = config_lib.incompatible_fields(saved, config)
        if differ:
            flat_old = config_lib._flatten(saved)
            flat_new = config_lib._flatten(config_lib.to_dict(config))
            details = ", ".join(
                f"{p}: {flat_old.get(p, '<missing>')!r} -> {flat_new.get(p, '<missing>')!r}"
                for p in differ[:8]
            )
            raise WorkdirError(
                f"{self.path} holds a run with a different config ({details}). "
                "Nothing was changed. Rerun with the original values to resume it, "
                "or pass a new --workdir to start another run."
            )

    def has_checkpoint(self):
        """Whether `checkpoints/` names a checkpoint (CheckpointManager's state)."""
        return os.path.exists(os.path.join(self.checkpoints, "checkpoint"))

    def check_writable(self):
        """Raises WorkdirError, before anything is written, if the workdir (or
        the nearest existing directory above it) cannot be written."""
        if not self.chief:
            return
        existing = self.path
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        problem = unwritable(existing)
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
        """Removes what a run that saved no checkpoint created: the workdir if
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

    def write_config(self, config):
        if self.chief:
            write_json(self.file(CONFIG_FILE), config_lib.to_dict(config))


def unwritable(directory):
    """Why `directory` cannot be written ("is on a read-only file system",
    "is not writable"), or None if it can."""
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return "is on a read-only file system"
    except OSError:
        pass
    if not os.access(directory, os.W_OK | os.X_OK):
        return "is not writable by this user"
    return None


# errno values of a file system that refuses writes, with the fix to name.
WRITE_ERRORS = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space (disk quota exceeded)",
    errno.EROFS: "use a writable directory",
    errno.EACCES: "use a directory this user can write",
    errno.EPERM: "use a directory this user can write",
}


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
        self.rows = read_csv(path)
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
            atomic_write(self.path, ",".join(self.columns) + "\n" + "".join(self._lines))


def _data_lines(path):
    """The text of each data row of a CSV file (none if it is absent)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        lines = f.read().splitlines(keepends=True)[1:]
    return [line if line.endswith("\n") else line + "\n" for line in lines if line.strip()]
