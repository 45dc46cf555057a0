"""`RUN_DIR/run.lock`: one run at a time in a run directory.

The process that writes a run (the chief of a multi-worker run) holds an
exclusive `fcntl.flock` on `run.lock` from before its first write to its
end. The file holds that process's host, pid and start time (JSON), so that
a second run on the same directory is refused with one line naming them.
The kernel drops a flock when its process ends, however it ends: the file a
SIGKILLed run leaves behind blocks nothing, and the next run takes it over.
The holder removes the file when it lets go.

File systems without flock support (some network file systems answer
ENOLCK) cannot lock: the run goes on with a warning.
"""

import errno
import json
import os
import socket
import time

from absl import logging

from bn_zoo.runs.files import WorkdirError

LOCK_FILE = "run.lock"

# How long a refused run waits for the holder to write its name into a file
# it has just locked (a few system calls).
_NAME_WAIT_SECONDS = 1.0


class RunLock:
    """The exclusive lock of run directory `directory` (a context manager:
    `with RunLock(path): ...`, or `acquire()` and `release()`).

    `acquire` creates `directory` if needed (and `release` removes it again
    if it is then empty), so it is the first write of a run.
    """

    def __init__(self, directory):
        self.directory = os.path.abspath(os.fspath(directory))
        self.path = os.path.join(self.directory, LOCK_FILE)
        self._fd = None
        self._made_directory = False

    @property
    def held(self):
        return self._fd is not None

    def acquire(self):
        """Takes the lock and writes this process's name into the file.

        Raises:
            WorkdirError: another live process holds it (named in the message).
            OSError: the directory or the file cannot be written (e.g. ENOSPC;
                `filename` is the lock file); nothing is left behind.
        """
        import fcntl

        try:
            os.makedirs(self.directory)
            self._made_directory = True
        except FileExistsError:
            pass
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                named = _holder(fd)
                os.close(fd)
                raise WorkdirError(_in_use_message(self.directory, named)) from None
            except OSError as error:  # ENOLCK, EOPNOTSUPP: no locks here.
                os.close(fd)
                logging.warning("Cannot lock %s (%s): nothing stops a second run from "
                                "writing to this --workdir at the same time.", self.path,
                                error.strerror)
                return self
            # A holder that let go between our open and our flock removed the
            # file: the lock is then on a file no other run will open.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        self._fd = fd
        record = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        try:
            os.ftruncate(fd, 0)
            data = (json.dumps(record) + "\n").encode()
            if os.pwrite(fd, data, 0) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        except OSError as error:
            self.release()
            raise OSError(error.errno, error.strerror, self.path) from error
        return self

    def release(self):
        """Removes the lock file and lets go of the lock (a lock not held: nothing)."""
        if self._fd is None:
            return
        try:
            if _same_file(self._fd, self.path):
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)  # Drops the flock.
        self._fd = None
        if self._made_directory:
            try:
                os.rmdir(self.directory)  # Only if the run left nothing in it.
            except OSError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


class NoLock:
    """What a process that does not write the run holds (a worker of a
    multi-worker run other than the chief)."""

    held = False

    def acquire(self):
        return self

    def release(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass


def holder(directory):
    """{"host", "pid", "started"} written in `directory`'s lock file, or None
    (no file, or no name in it yet). Says nothing about whether that process
    still holds the lock."""
    try:
        with open(os.path.join(directory, LOCK_FILE), "rb") as f:
            return _parse(f.read())
    except OSError:
        return None


def _same_file(fd, path):
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _parse(data):
    try:
        record = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and "pid" in record else None


def _holder(fd):
    """The name in a lock file another process holds: it writes it right
    after taking the lock, so an empty file is read again for a moment."""
    deadline = time.monotonic() + _NAME_WAIT_SECONDS
    while True:
        record = _parse(os.pread(fd, 4096, 0))
        if record is not None or time.monotonic() > deadline:
            return record
        time.sleep(0.05)


def _in_use_message(directory, record):
    fix = "Wait for it to end, stop it, or use another --workdir."
    if record is None:
        return (f"--workdir={directory} is in use by another run (its {LOCK_FILE} names no "
                f"process). {fix}")
    started = record.get("started")
    when = (time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started))
            if isinstance(started, (int, float)) else "at an unknown time")
    return (f"--workdir={directory} is in use by the run of pid {record.get('pid')} on host "
            f"{record.get('host')} (started {when}). {fix}")
