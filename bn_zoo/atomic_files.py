"""Atomic file writes: a file is written whole or not at all.

`atomic_write` writes to a temporary file in the same directory and renames
it over the old one (`os.replace`), so a process killed at any moment leaves
either the old or the new version, never half of one, with the permissions a
plain write would give (`plain_write_mode`). The run directory's files
(`bn_zoo.runs.files`) and the checksum files beside weights files
(`bn_zoo.models.weights_files`) are written this way.
"""

import os
import stat
import tempfile


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

    Raises:
        OSError: the write failed (e.g. errno ENOSPC on a full disk); its
            `filename` is `path` (the file meant, not the temporary one).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        mode = "wb" if isinstance(data, bytes) else "w"
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".",
                                   suffix=".tmp")
        os.fchmod(fd, plain_write_mode(path))
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(error, OSError) and error.errno is not None and error.filename != path:
            # OSError(errno, ...) is the matching subclass (PermissionError, ...).
            raise OSError(error.errno, error.strerror, path) from error
        raise
