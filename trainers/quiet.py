"""Quiet entry points: bn_zoo's own progress, results, warnings and errors;
not the libraries' chatter.

Every `trainers/*.py` imports this module first, before anything imports
TensorFlow, and ends with `quiet.run(main)` instead of absl's `app.run(main)`
(with `flags_parser=cli.parse_flags` where it takes a --config). What the
user then sees is described in `bn_zoo.training.console`: results on stdout;
on stderr `[H:MM:SS] message` progress lines and, on failure, one line
`ERROR (Kind): message` with exit status 1.

The rule:

* Default (neither `--verbosity` on the command line nor `TF_CPP_MIN_LOG_LEVEL`
  in the environment): TensorFlow starts with `TF_CPP_MIN_LOG_LEVEL=2`, so
  its C++ errors show and its C++ info and warnings do not. Its start-up
  lines (the oneDNN and CUDA-stub notices, the CPU-instructions notice,
  `failed call to cuInit` on a machine without an NVIDIA device) are written
  while it is imported, before any flag is parsed: this module imports
  TensorFlow and Keras with stderr captured and writes back only what the
  rule keeps. Afterwards a small filter process (`trainers/native_logs.py`)
  sits between the command and its stderr (file descriptor 2) and drops what native code writes there
  below the level (absl's C++ info lines, which `TF_CPP_MIN_LOG_LEVEL` does
  not reach, the LiteRT converter's `fully_quantize: ...` line). In Python,
  bn_zoo logs at INFO in the format above; other libraries' log records show
  only at ERROR and above, and Python warnings only where they come from
  bn_zoo's own files (not TensorFlow's tf.data options notice, not tf2onnx's
  FutureWarning, not `tf.lite.Interpreter is deprecated`).
* `--verbosity=N` (absl's flag, also `-v N`): every library's Python logs at
  absl level N (1 debug, 0 info, -1 warning, -2 error), bn_zoo's included,
  in absl's format; every Python warning; TensorFlow's C++ lines at the
  matching level (`TF_CPP_MIN_LOG_LEVEL` 0, 0, 1, 2 when the environment does
  not set it), start-up lines included; a failure's traceback before its
  ERROR line.
* `TF_CPP_MIN_LOG_LEVEL` set in the environment: TensorFlow's C++ lines at
  that level, start-up lines included (TensorFlow itself prints some of
  them whatever the level); Python as by default.

Nothing is captured or filtered when the C++ level is 0, so a crash inside
TensorFlow's import is fully visible with `--verbosity=0` or
`TF_CPP_MIN_LOG_LEVEL=0`. Python errors always show.

`--help` (also `-h`, `--helpshort`, `--helpfull`) prints the command's
description and bn_zoo's flags, then exits 0, before TensorFlow is imported:
in that case this module imports bn_zoo's packages without their
`__init__` (which import Keras), so only the modules that define the flags
run (a trainer imports the rest of bn_zoo inside its `main`).

Ctrl-C while the command starts (TensorFlow imports, the command's modules
load) prints one line and exits 130. TensorFlow starts with SIGTERM and
SIGINT blocked, so the threads it starts then never take these signals: they
reach the main thread, where Python and the trainer's preemption handling
see them, or stay pending while TensorFlow holds that thread (see
`bn_zoo.training.cluster.deadline`).
"""

import glob
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import signal
import sys
import tempfile
import time
import warnings

from .native_logs import NativeLineFilter, StderrFilter, kept_lines  # noqa: F401 - re-exported

_STARTED = time.time()

# absl's -v/--verbosity levels -> TF_CPP_MIN_LOG_LEVEL (0 info ... 3 fatal).
_VERBOSITY_NAMES = {"debug": 1, "info": 0, "warning": -1, "error": -2, "fatal": -3}
_HELP_FLAGS = ("-h", "-?", "--help", "-help", "--helpshort", "-helpshort",
               "--helpfull", "-helpfull")
_INTERRUPTED = (
    "Interrupted (Ctrl-C) while the command was starting; nothing was run or written.")
_OUR_PACKAGES = ("bn_zoo", "trainers", "configs")


def verbosity_argument(argv):
    """The value of `--verbosity`/`-v` in `argv` as an int, or None if absent
    (a value absl would refuse counts as 0; absl reports it later)."""
    value = None
    args = list(argv[1:])
    for i, arg in enumerate(args):
        if arg == "--":
            break
        match = re.fullmatch(r"--?(?:verbosity|v)(?:=(.*))?", arg)
        if match is None:
            continue
        value = match.group(1)
        if value is None:
            value = args[i + 1] if i + 1 < len(args) else "0"
    if value is None:
        return None
    value = value.strip().lower()
    if value in _VERBOSITY_NAMES:
        return _VERBOSITY_NAMES[value]
    try:
        return int(value)
    except ValueError:
        return 0


def help_argument(argv):
    """The help flag in `argv` (`--help`, `-h`, `--helpfull`, ...), or None."""
    for arg in argv[1:]:
        if arg == "--":
            return None
        if arg in _HELP_FLAGS:
            return arg
    return None


def cpp_log_level(verbosity):
    """TF_CPP_MIN_LOG_LEVEL for absl verbosity `verbosity` (None: the default, 2)."""
    if verbosity is None:
        return 2
    return min(3, max(0, -verbosity))


def has_nvidia_device():
    """Whether the machine has an NVIDIA device node (then a failed cuInit matters)."""
    return bool(glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/nvidiactl"))


class _Interrupted(SystemExit):
    """Ctrl-C while the command starts (exit status 130)."""

    def __init__(self):
        super().__init__(130)


_capturing = False


def _interrupted_line():
    os.write(2, (f"ERROR (KeyboardInterrupt): {_INTERRUPTED}\n").encode())


def _on_interrupt_while_starting(signum, frame):
    """SIGINT before `run` starts the command: one line, exit status 130 (while
    the start-up output is captured, `_quiet_start` writes the line)."""
    if not _capturing:
        _interrupted_line()
    raise _Interrupted()


def _start_tensorflow():
    """Imports TensorFlow and Keras and lists the devices, with SIGTERM and
    SIGINT blocked meanwhile: the threads TensorFlow starts then inherit the
    block, so these signals reach the main thread (Python's handlers), or stay
    pending while TensorFlow holds it (bn_zoo.training.cluster.deadline)."""
    stop = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    try:
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _quiet_start():
    """Sets TF_CPP_MIN_LOG_LEVEL, the filters of the default verbosity, and
    starts TensorFlow with stderr captured."""
    global _capturing

    if "tensorflow" in sys.modules:  # Too late (e.g. under pytest): leave it be.
        return
    signal.signal(signal.SIGINT, _on_interrupt_while_starting)
    verbosity = verbosity_argument(sys.argv)
    default = verbosity is None and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", str(cpp_log_level(verbosity)))
    try:
        level = int(os.environ["TF_CPP_MIN_LOG_LEVEL"])
    except ValueError:
        level = 0
    if verbosity is None:
        _hide_library_warnings()
    if level <= 0:
        _start_tensorflow()
        return
    hide_cuinit = default and not has_nvidia_device()
    try:
        StderrFilter(level, hide_cuinit)
    except OSError:  # No stderr to filter.
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        outcome = "failed"  # Then everything captured is written back.
        _capturing = True
        try:
            _start_tensorflow()
            outcome = "started"
        except _Interrupted:
            outcome = "interrupted"
            raise
        finally:
            _capturing = False
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            if outcome == "started":
                text = kept_lines(text, level, hide_cuinit)
            if outcome == "interrupted":
                _interrupted_line()
            elif text:
                os.write(2, text.encode("utf-8"))


def _our_directories():
    """The directories of bn_zoo, trainers/ and configs/ (found without
    importing them)."""
    dirs = []
    for name in _OUR_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(spec.submodule_search_locations)
    return tuple(os.path.realpath(d) + os.sep for d in dirs)


class _Ours:
    """Whether a file is one of bn_zoo's (cached per path)."""

    def __init__(self):
        self._dirs = _our_directories()
        self._seen = {}

    def __call__(self, path):
        if path not in self._seen:
            self._seen[path] = os.path.realpath(path).startswith(self._dirs)
        return self._seen[path]


def _hide_library_warnings():
    """Python warnings show only where they come from bn_zoo's own files."""
    ours = _Ours()
    show = warnings.showwarning

    def show_ours(message, category, filename, lineno, file=None, line=None):
        if ours(filename):
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = show_ours


class OnlyOurInfo:
    """A logging filter: records of bn_zoo, trainers/ and configs/ at any
    level; other libraries' records only at ERROR and above."""

    def __init__(self):
        self._ours = _Ours()

    def filter(self, record):
        import logging

        return record.levelno >= logging.ERROR or self._ours(record.pathname)


class LineFormatter:
    """A logging formatter for the default verbosity: bn_zoo's records as
    `[H:MM:SS] message` (a warning as `[H:MM:SS] WARNING: message`, an error
    as `ERROR (Kind): message`, Kind the exception being handled), other
    libraries' records (errors only, see OnlyOurInfo) in absl's format."""

    def __init__(self, library_formatter, started=None):
        self._library = library_formatter
        self._ours = _Ours()
        self._started = _STARTED if started is None else started

    def format(self, record):
        import logging

        from bn_zoo.training import console

        if not self._ours(record.pathname):
            return self._library.format(record)
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            error = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
            return console.error_line(type(error).__name__ if error else "Error", message)
        stamp = f"[{console.clock(record.created - self._started)}] "
        if record.levelno >= logging.WARNING:
            message = f"WARNING: {message}"
        return stamp + message.replace("\n", "\n" + " " * len(stamp))


def set_up_logging():
    """Python logging of an entry point, by the rule in the module docstring.

    `run` calls it after absl parsed the flags and installed its handler
    (calling it again does nothing). Without `--verbosity`: absl level INFO,
    bn_zoo's records in the LineFormatter format, and a filter on the
    handlers that hides other libraries' records below ERROR. With it:
    absl's own rule, untouched.
    """
    import logging as std_logging

    from absl import flags, logging

    if flags.FLAGS["verbosity"].present:
        return
    logging.set_verbosity(logging.INFO)
    absl_handler = logging.get_absl_handler()
    if not isinstance(absl_handler.python_handler.formatter, LineFormatter):
        absl_handler.setFormatter(LineFormatter(absl_handler.python_handler.formatter))
    only_ours = OnlyOurInfo()
    handlers = {absl_handler}
    for logger in (std_logging.getLogger(), std_logging.getLogger("tensorflow")):
        handlers.update(logger.handlers)
    for handler in handlers:
        if not any(isinstance(f, OnlyOurInfo) for f in handler.filters):
            handler.addFilter(only_ours)


def parse_flags(argv):
    """absl's flag parsing; a bad flag is one line `ERROR (Kind): ...` and exit
    status 1 (absl prints `FATAL Flags parsing error` and its usage hint)."""
    from absl import flags

    from bn_zoo.training import console

    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        console.fail(error, type(error).__name__, console.flag_error_message(error), argv)


def print_help(main, argv=None):
    """The command's description and bn_zoo's flags (the key flags of the
    module that defines `main`), then absl's, on stdout."""
    from absl import flags

    argv = sys.argv if argv is None else argv
    module = sys.modules.get(main.__module__)
    name = argv[0] if main.__module__ == "__main__" else main.__module__
    doc = (getattr(sys.modules.get("__main__"), "__doc__", None)
           or getattr(module, "__doc__", None) or "").strip("\n")
    lines = [doc.rstrip(), ""] if doc else []
    ours = flags.FLAGS.module_help(name).strip("\n").split("\n")[1:]
    lines += ["Flags:", *ours, "",
              "Output: results on stdout; progress lines `[H:MM:SS] ...` and, on failure, "
              "one line `ERROR (Kind): ...` on stderr.",
              "  --verbosity=N (-v N): absl's log level (0 info, 1 debug): shows the "
              "libraries' logs and warnings and a failure's traceback as well.",
              "  --helpfull: every flag, absl's included."]
    try:
        print("\n".join(lines), flush=True)
    except BrokenPipeError:  # e.g. piped into head.
        sys.exit(0)
    if help_argument(argv) in ("--helpfull", "-helpfull"):
        from absl import logging  # noqa: F401 - defines absl's logging flags.

        print(flags.FLAGS.get_help(), flush=True)


def run(main, flags_parser=None):
    """Runs the command `main(argv)` as absl's `app.run` does, with bn_zoo's
    output rules: `--help` answered at once (exit 0), a bad flag and any
    failure of `main` printed as one line `ERROR (Kind): message` (exit
    status 1; 130 for Ctrl-C), and `set_up_logging()` before `main`.

    `flags_parser` replaces `parse_flags` (e.g. `cli.parse_flags`, which also
    explains an unknown --config.<field>)."""
    from absl import app

    from bn_zoo.training import console

    if help_argument(sys.argv):
        print_help(main)
        sys.exit(0)
    if signal.getsignal(signal.SIGINT) is _on_interrupt_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def checked_main(argv):
        set_up_logging()

        def call():
            if len(argv) > 1:
                raise app.UsageError(
                    f"Unexpected arguments: {' '.join(argv[1:])}. Flags are written "
                    "--name=value; --help lists them.")
            return main(argv)

        return console.report_errors(call)

    app.run(checked_main, flags_parser=flags_parser or parse_flags)


class _BarePackages(importlib.abc.MetaPathFinder):
    """For --help: bn_zoo's packages are imported without running their
    `__init__.py` (which import Keras), so that the modules defining the
    flags (the trainers, `bn_zoo.training.cli`) load without TensorFlow. A
    trainer imports what its `main` needs inside `main`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] != "bn_zoo":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None \
                and spec.submodule_search_locations is not None:
            spec.loader = _NoInit()
        return spec


class _NoInit(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        pass


def _require_tensorflow_backend():
    """Every entry point here is TensorFlow-only (tf.distribute, tf.data,
    TensorFlow checkpoints, SavedModel export): refuse another Keras backend
    with one clear line and exit code 1, before any flag is parsed."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        sys.stderr.write(
            f"ERROR (BackendError): bn_zoo's trainers run on Keras' TensorFlow backend "
            f"only, and this process runs the {backend!r} backend. Rerun with "
            "KERAS_BACKEND=tensorflow (it overrides the \"backend\" of "
            "~/.keras/keras.json). The layer, the models and bn_zoo.population also "
            "run on JAX and PyTorch (docs/layer.md).\n"
        )
        sys.exit(1)


if help_argument(sys.argv) and "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _BarePackages())
else:
    _quiet_start()
    _require_tensorflow_backend()
