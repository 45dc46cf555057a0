"""What bn_zoo's commands print, and how a failure becomes one line.

At default verbosity every `python -m trainers.<command>` prints

* on stdout: its results (a table, a path, `final: ...`);
* on stderr: bn_zoo's progress lines, each `[H:MM:SS] message` where
  H:MM:SS is the time since the command started (`PROGRESS_LINE`), and on
  failure exactly one line `ERROR (Kind): message` (`ERROR_LINE`), Kind being
  the exception's class, with exit status 1 (130 after Ctrl-C; a preempted
  run 128 + the signal number, after its one-line report).

With `--verbosity` (absl's flag) the progress lines keep absl's own format,
the libraries' logs come back, and a failure prints its traceback before the
ERROR line. `trainers/quiet.py` sets this up; this module holds the formats,
so that the library (`bn_zoo.training`) and the entry points share them.

Importing this module imports neither TensorFlow nor Keras (`--help` answers
before TensorFlow is imported).
"""

import contextlib
import re
import signal
import sys
import traceback

# The two kinds of line bn_zoo writes on stderr at default verbosity; the
# continuation lines of a multi-line progress message are indented by the
# width of the time stamp.
PROGRESS_LINE = re.compile(r"^\[\d+:\d\d:\d\d\] \S")
CONTINUATION_LINE = re.compile(r"^ {11,}\S")
ERROR_LINE = re.compile(r"^ERROR \((\w+)\): \S.*$")


def verbose(argv=None):
    """Whether the command line (default `sys.argv`) has absl's --verbosity
    (or -v): then libraries' logs and tracebacks are shown."""
    args = (sys.argv if argv is None else argv)[1:]
    for arg in args:
        if arg == "--":
            return False
        if re.fullmatch(r"--?(?:verbosity|v)(?:=.*)?", arg):
            return True
    return False


def clock(seconds):
    """`seconds` as H:MM:SS (e.g. 0:01:05), the time stamp of progress lines."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def duration(seconds):
    """A short duration for a progress line: `0.4 s`, `12 s`, `3 min 05 s`,
    `2 h 07 min`."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


def error_line(kind, message):
    """`ERROR (kind): message` on one line (line breaks in `message` become
    spaces)."""
    message = " ".join(str(message).split())
    return f"ERROR ({kind}): {message}"


def fail(error, kind, message, argv=None, exit_code=1):
    """Prints `ERROR (kind): message` on stderr (after the traceback of
    `error`, with --verbosity) and exits with `exit_code`."""
    if error is not None and verbose(argv):
        traceback.print_exception(error)
    print(error_line(kind, message), file=sys.stderr, flush=True)
    sys.exit(exit_code)


def flag_error_message(error):
    """The message of absl's flag error `error` (e.g. a missing required
    flag, with that flag's meaning), ending with where the flags are listed."""
    from absl import flags

    text = " ".join(str(error).split()).rstrip(".")
    required = re.fullmatch(r"flag --(\w+)=None: Flag --\1 must have a value other than None",
                            text)
    if required:
        name = required.group(1)
        meaning = (flags.FLAGS[name].help or "").rstrip(".") if name in flags.FLAGS else ""
        text = f"--{name} is required" + (f": {meaning}" if meaning else "")
    return f"{text}. --help lists the flags."


def _message(error):
    """The text of an exception: its message (an OSError's filename too, a
    KeyError's key without quotes), or its class name if it has none."""
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = str(error.args[0])
    elif isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(getattr(error, "message", None) or error)
    return text.strip() or type(error).__name__


class Terminated(BaseException):
    """SIGTERM outside the training loop (where `bn_zoo.training.preemption`
    saves a checkpoint first): while the command loads its data or builds
    its model, exports, evaluates, or a second SIGTERM during training."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _terminated_as_exception():
    """SIGTERM raises `Terminated` in the main thread (instead of ending the
    process at once, without a word), so the command reports it in one line
    and what it wrote before its first checkpoint is rolled back."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # Not the main thread: leave the signal as it is.
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_errors(fn):
    """Calls `fn()` and returns its result; a failure becomes one line.

    * `Preempted` (the trainer stopped by SIGTERM/SIGINT after saving a
      checkpoint): its message, exit code 128 + the signal number.
    * The trainer's user errors (`bn_zoo.training.errors.USER_ERRORS`: a bad
      config, an incompatible workdir, missing data, a diverged loss) and any
      ValueError, TypeError, LookupError, OSError, ImportError (a missing
      extra) or absl UsageError: `ERROR (Kind): message`,
      exit code 1; a full, read-only or forbidden disk says so and what to do.
    * Ctrl-C (KeyboardInterrupt): one line, exit code 130; SIGTERM where the
      trainer does not save first (`Terminated`): one line, exit code 143.
    * Any other exception (a bug): `ERROR (Kind): message`, with a request to
      rerun with --verbosity=0 for the traceback, exit code 1.

    With --verbosity the traceback is printed before the line.
    """
    try:
        with _terminated_as_exception():
            return fn()
    except KeyboardInterrupt as error:
        fail(error, "KeyboardInterrupt",
             "Interrupted (Ctrl-C) without saving: before training started, or a second "
             "Ctrl-C. Rerun the same command to resume from the newest checkpoint, if any.",
             exit_code=130)
    except Terminated as error:
        fail(error, "Terminated",
             "Stopped by SIGTERM without saving: before training started, after it ended, "
             "or a second SIGTERM. Rerun the same command to resume from the newest "
             "checkpoint, if any.", exit_code=128 + signal.SIGTERM)
    except Exception as error:  # noqa: BLE001 - every failure is one line.
        from absl.app import UsageError

        from bn_zoo.training.errors import USER_ERRORS, Preempted
        from bn_zoo.training.workdir import WRITE_ERRORS

        if isinstance(error, Preempted):
            print(f"{error}", file=sys.stderr, flush=True)
            sys.exit(error.exit_code)
        if isinstance(error, OSError) and error.errno in WRITE_ERRORS:
            where = f" {error.filename}" if error.filename else ""
            fail(error, type(error).__name__,
                 f"Cannot write{where}: {error.strerror}. Nothing more was written; "
                 f"{WRITE_ERRORS[error.errno]} and rerun.")
        message = _message(error)
        if not isinstance(error, USER_ERRORS + (ValueError, TypeError, LookupError, OSError,
                                                 ImportError, UsageError)):
            message += " (unexpected: rerun with --verbosity=0 to see where it happened)"
        fail(error, type(error).__name__, message)
