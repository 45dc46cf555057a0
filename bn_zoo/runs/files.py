"""Atomic writes and the JSON and CSV files of a run directory.

Every file is written to a temporary file in the same directory and renamed
over the old one (`os.replace`), so a process killed at any moment leaves
either the old or the new version, never half of one, with the permissions a
plain write would give.
"""

import csv
import errno
import io
import json
import os
import stat
import tempfile

# errno values of a file system that refuses writes, with the fix to name.
WRITE_ERRORS = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space (disk quota exceeded)",
    errno.EROFS: "use a writable directory",
    errno.EACCES: "use a directory this user can write",
    errno.EPERM: "use a directory this user can write",
}


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
    path = os.fspath(path)
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
    """`value` as indented JSON with sorted keys, written atomically."""
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
