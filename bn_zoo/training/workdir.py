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
the old or the new version, never half of one. Only the chief process of a
multi-worker run writes these files.
"""

import csv
import io
import json
import os
import tempfile

from bn_zoo.training import config as config_lib
from bn_zoo.training.errors import WorkdirError

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
FINAL_FILE = "final.json"
CHECKPOINTS_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"


def atomic_write(path, data):
    """Writes `data` (str or bytes) to `path` through a temporary file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
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
        data_dir) may change between reruns; the others must be equal.
        """
        saved = self.saved_config()
        if saved is None:
            if os.path.isdir(self.checkpoints) and os.listdir(self.checkpoints):
                raise WorkdirError(
                    f"{self.path} has checkpoints but no {CONFIG_FILE}, so it cannot "
                    "tell which run they belong to. Use an empty --workdir."
                )
            return
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

    def write_config(self, config):
        if self.chief:
            write_json(self.file(CONFIG_FILE), config_lib.to_dict(config))


class MetricsLog:
    """`metrics.csv`: one row per evaluation step, rewritten atomically.

    On resume from step s, rows after s (written after the last checkpoint by
    a run that was then killed) are dropped, so no evaluation point appears
    twice or is skipped.
    """

    def __init__(self, path, columns, chief=True):
        self.path = path
        self.columns = list(columns)
        self.chief = chief
        self.rows = read_csv(path)

    def truncate(self, step):
        kept = [r for r in self.rows if r["step"] <= step]
        if len(kept) != len(self.rows):
            self.rows = kept
            self._write()

    def append(self, row):
        self.rows.append(dict(row))
        self._write()

    def _write(self):
        if self.chief:
            write_csv(self.path, self.rows, self.columns)
