"""The JSON and CSV files of a run directory, written atomically.

Every file is written whole or not at all (`bn_zoo.atomic_files.atomic_write`,
re-exported here), with the permissions a plain write would give. A write
that fails (a full disk: `WRITE_ERRORS`) raises an OSError naming the file
and leaves the file as it was.

A file can still be found torn (copied while written, a file system that lost
the end of a write, an edit): reading it raises `TornFileError`, one line
naming the file, what is wrong and the fix, never a JSONDecodeError.
"""

import csv
import errno
import io
import json
import os

from bn_zoo.atomic_files import atomic_write, plain_write_mode  # noqa: F401 - re-exported


class WorkdirError(ValueError):
    """The run directory (`--workdir`) cannot be used: it is not a run, has no
    checkpoint, none of its checkpoints can be read, one of its files cannot
    be read, or it holds a run that the command cannot continue."""


class TornFileError(WorkdirError):
    """A file of the run directory is incomplete or malformed: a JSON file
    that does not parse, a metrics.csv row cut short. `path` is the file,
    `problem` what is wrong with it (without the fix)."""

    def __init__(self, path, problem, fix):
        super().__init__(f"{path} {problem}. {fix}")
        self.path = os.fspath(path)
        self.problem = problem


# errno values of a file system that refuses writes, with the fix to name.
WRITE_ERRORS = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space (disk quota exceeded)",
    errno.EROFS: "use a writable directory",
    errno.EACCES: "use a directory this user can write",
    errno.EPERM: "use a directory this user can write",
}


# The fix a TornFileError names when its reader knows no better one.
REWRITE_FIX = "Write it again, or remove it."


def read_json(path, fix=REWRITE_FIX):
    """The JSON in `path`, or None if there is no such file.

    Raises:
        TornFileError: the file is not valid UTF-8 JSON (cut short, or
            edited); its message ends with `fix`.
    """
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        problem = f"is not UTF-8 text ({error.reason} at byte {error.start})"
    except json.JSONDecodeError as error:
        problem = (f"is not valid JSON ({error.msg}: line {error.lineno} column "
                   f"{error.colno} of its {len(data)} bytes)")
    raise TornFileError(path, problem, fix)


def write_json(path, value):
    """`value` as indented JSON with sorted keys, written atomically."""
    atomic_write(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_csv(path, fix=REWRITE_FIX):
    """Rows of a metrics CSV as dicts: numbers as floats (empty cells -> NaN),
    `step` as an int, other text as it is. An absent file gives no rows.

    Raises:
        TornFileError: a row cut short or malformed (`parse_csv`); its
            message names the line and ends with `fix`.
    """
    table = parse_csv(path)
    if table.problem is not None:
        raise TornFileError(path, table.problem, fix)
    return table.rows


class CsvTable:
    """A metrics CSV as `parse_csv` read it.

    Attributes:
        header: The column names of its first line ([] without one).
        rows: The rows before the first bad line, as `read_csv` returns them.
        lines: The text of each of `rows`, newline included.
        problem: None, or what is wrong at the first bad line ("line 9 has 3
            of 7 fields: ..."), for a message.
        torn_tail: Whether that line is the last one and ends without a
            newline (a write cut short), so that dropping it loses only it.
    """

    def __init__(self, header, rows, lines, problem=None, torn_tail=False):
        self.header, self.rows, self.lines = header, rows, lines
        self.problem, self.torn_tail = problem, torn_tail


def _cell(value):
    if value == "":
        return float("nan")
    try:
        return float(value)
    except ValueError:
        return value


def _excerpt(line, width=40):
    """The start of `line` for a message, quoted."""
    line = line.rstrip("\r\n")
    return repr(line if len(line) <= width else line[:width] + "...")


def parse_csv(path):
    """Reads a metrics CSV (header line, then one row per line, each line
    ending in a newline, as `write_csv` and `MetricsLog` write it) up to its
    first bad line: one without its newline (cut short), with another count
    of fields than the header, or whose `step` is not an integer. Blank lines
    are skipped. An absent or empty file is an empty table."""
    if not os.path.exists(path):
        return CsvTable([], [], [])
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return CsvTable([], [], [], f"is not UTF-8 text ({error.reason} at byte "
                                    f"{error.start})")
    lines = text.splitlines(keepends=True)
    if not lines:
        return CsvTable([], [], [])
    if not lines[0].endswith("\n"):
        return CsvTable([], [], [], f"ends inside its header line ({_excerpt(lines[0])})",
                        torn_tail=True)
    header = next(csv.reader([lines[0]]))
    rows, kept = [], []
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        last = number == len(lines)
        problem = None
        if not line.endswith("\n"):
            problem = f"ends inside line {number} ({_excerpt(line)}): the row is cut short"
        else:
            try:
                fields = next(csv.reader([line]), [])
            except csv.Error as error:
                fields = [f"<{error}>"]  # Not the header's count: reported below.
            if len(fields) != len(header):
                problem = (f"has {len(fields)} fields at line {number} and {len(header)} in "
                           f"its header ({_excerpt(line)})")
            else:
                row = {k: _cell(v) for k, v in zip(header, fields)}
                step = row.get("step")
                if not (isinstance(step, float) and step.is_integer()):
                    problem = (f"has step {fields[header.index('step')]!r} at line {number}, "
                               "not an integer" if "step" in header else
                               "has no step column")
                else:
                    row["step"] = int(step)
        if problem is not None:
            return CsvTable(header, rows, kept, problem,
                            torn_tail=last and not line.endswith("\n"))
        rows.append(row)
        kept.append(line)
    return CsvTable(header, rows, kept)


def write_csv(path, rows, columns):
    """`rows` (dicts; None and missing values as empty cells) under the header
    `columns`, written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write(path, buffer.getvalue())


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
