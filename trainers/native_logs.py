"""What native code writes to stderr, filtered by log level.

TensorFlow's C++ code and the libraries it loads log to file descriptor 2
with glog's or TensorFlow's own prefix (`I1207 12:34:56.789 ... file.cc:12]`,
`2026-12-07 12:34:56.789: W ...`), below Python's logging. At default
verbosity a bn_zoo command keeps the lines at or above a level
(`TF_CPP_MIN_LOG_LEVEL`) and every line that is not such a log:
`kept_lines` for the start-up output captured whole, `NativeLineFilter` one
line at a time for the rest of the run, applied by a small filter process
(`StderrFilter`, which runs this file with `--filter-stderr`) between fd 2
and the real stderr. This module imports the standard library only, so the
filter process starts in milliseconds (`python -S -E`).
"""

import atexit
import os
import re
import signal
import subprocess
import sys

_GLOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]\s]+:\d+\] ")
_TF_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) ")
_PYTHON_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"
_SEVERITIES = {"I": 0, "W": 1, "E": 2, "F": 3}
# Lines native code prints without a log prefix, at info level.
_NATIVE_INFO = re.compile(r"^fully_quantize: \d+, inference_type: ")


def _records(text):
    """Captured stderr -> [[severity, text]]: one record per log line with its
    continuation lines; severity None for lines that are not TensorFlow logs,
    "preamble" for absl's notice that precedes a library's first log lines."""
    records = []
    for line in text.splitlines(keepends=True):
        match = _GLOG_LINE.match(line) or _TF_LINE.match(line)
        if match:
            records.append([_SEVERITIES[match.group(1)], line])
        elif line.startswith(_ABSL_PREAMBLE):
            records.append(["preamble", line])
        elif _NATIVE_INFO.match(line):
            records.append([0, line])
        elif records and records[-1][0] not in (None, "preamble") \
                and not _PYTHON_WARNING.match(line):
            records[-1][1] += line
        else:
            records.append([None, line])
    return records


def kept_lines(text, level, hide_cuinit):
    """The part of captured start-up output `text` to write back: lines that
    are not TensorFlow logs, and logs at or above `level` (with absl's
    preamble if one of its logs is kept), without a failed cuInit if
    `hide_cuinit`."""
    kept, preamble = [], ""
    for severity, record in _records(text):
        if severity == "preamble":
            preamble = record
            continue
        if severity is not None:
            if severity < level or (hide_cuinit and "failed call to cuInit" in record):
                continue
            record, preamble = preamble + record, ""
        kept.append(record)
    return "".join(kept)


class NativeLineFilter:
    """The rule of `kept_lines`, one line at a time, for what native code
    writes to stderr while the command runs: a log line below `level` (and a
    failed cuInit if `hide_cuinit`) is dropped, absl's preamble is kept only
    before a kept log line; every other line passes unchanged."""

    def __init__(self, level, hide_cuinit):
        self.level = level
        self.hide_cuinit = hide_cuinit
        self._preamble = b""

    def __call__(self, line):
        """The bytes to write for `line` (bytes, with its newline)."""
        text = line.decode("utf-8", "replace")
        if text.startswith(_ABSL_PREAMBLE):
            self._preamble = line
            return b""
        match = _GLOG_LINE.match(text) or _TF_LINE.match(text)
        severity = _SEVERITIES[match.group(1)] if match else (
            0 if _NATIVE_INFO.match(text) else None)
        if severity is None:
            return line
        if severity < self.level or (self.hide_cuinit and "failed call to cuInit" in text):
            return b""
        line, self._preamble = self._preamble + line, b""
        return line


def _filter_stream(level, hide_cuinit, source=0, target=2):
    """The filter process: copies `source` to `target` through
    NativeLineFilter until end of file. It ignores SIGINT and SIGTERM (a
    Ctrl-C reaches the whole process group): it ends when the command and its
    children have closed their stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    keep = NativeLineFilter(level, hide_cuinit)
    with os.fdopen(source, "rb", buffering=0) as stream:
        pending = b""
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = b"".join(keep(line + b"\n") for line in lines)
            if out:
                _write_all(target, out)
        if pending:
            _write_all(target, keep(pending))


def _write_all(fd, data):
    while data:
        try:
            written = os.write(fd, data)
        except BrokenPipeError:
            return
        data = data[written:]


class StderrFilter:
    """Puts a filter process (`_filter_stream`) between this process's file
    descriptor 2 and the real stderr, for what native code writes there.
    Python's `sys.stderr` writes to the real stderr directly, so its lines
    keep their order with stdout's. At exit fd 2 is restored and the filter
    drained, so no line arrives after the command has ended. A process
    killed outright loses nothing either: the filter reads until every
    writer has closed its end."""

    def __init__(self, level, hide_cuinit):
        sys.stderr.flush()
        self._saved = os.dup(2)
        read_end, write_end = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-S", "-E", os.path.abspath(__file__), "--filter-stderr",
             str(level), "1" if hide_cuinit else "0"],
            stdin=read_end, stdout=subprocess.DEVNULL, stderr=self._saved,
            start_new_session=False)
        os.close(read_end)
        os.dup2(write_end, 2)
        os.close(write_end)
        sys.stderr = os.fdopen(os.dup(self._saved), "w", buffering=1,
                               encoding=sys.stderr.encoding, errors="backslashreplace")
        atexit.register(self.close)

    def close(self):
        """Restores the real stderr and waits (a few seconds at most) for the
        filter to write what it holds."""
        if self._process is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)
        os.close(self._saved)
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # A child still holds the pipe.
            pass
        self._process = None


if __name__ == "__main__" and sys.argv[1:2] == ["--filter-stderr"]:
    _filter_stream(int(sys.argv[2]), sys.argv[3] == "1")
