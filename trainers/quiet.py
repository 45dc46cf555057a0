"""Quiet entry points: bn_zoo's own progress, results, warnings and errors;
not the libraries' chatter.

Every `trainers/*.py` imports this module first, before anything imports
TensorFlow: TensorFlow writes its start-up lines from C++ while it is
imported and while it first lists its devices, before any flag is parsed
(the oneDNN and CUDA-stub notices, twice; the CPU-instructions notice;
`failed call to cuInit` on a machine without a GPU). Importing this module
imports TensorFlow and Keras and lists the devices with stderr captured, then
writes back the captured lines the rule below keeps. Call `set_up_logging()`
at the start of `main` for the Python side.

The rule:

* Default (neither `--verbosity` on the command line nor `TF_CPP_MIN_LOG_LEVEL`
  in the environment): `TF_CPP_MIN_LOG_LEVEL=2`, so TensorFlow's C++ errors
  show and its C++ info and warnings do not; the start-up lines are hidden,
  and so is `failed call to cuInit` where the machine has no NVIDIA device
  (where it has one, that line is a real problem and shows). In Python, bn_zoo
  logs at INFO (its progress lines); other libraries (TensorFlow, TFDS, Keras)
  show only their errors.
* `--verbosity=N` (absl's flag, also `-v N`): every library's Python logs at
  absl level N (1 debug, 0 info, -1 warning, -2 error), bn_zoo's included;
  TensorFlow's C++ lines at the matching level (`TF_CPP_MIN_LOG_LEVEL` 0, 0,
  1, 2 when the environment does not set it), start-up lines included.
* `TF_CPP_MIN_LOG_LEVEL` set in the environment: TensorFlow's C++ lines at
  that level, start-up lines included (TensorFlow itself prints some of
  them whatever the level).

Nothing is captured when the C++ level is 0, so a crash inside TensorFlow's
import is fully visible with `--verbosity=0` or `TF_CPP_MIN_LOG_LEVEL=0`.
Python errors (tracebacks, bn_zoo's `ERROR ...` lines) always show.

TensorFlow starts with SIGTERM and SIGINT blocked, so the threads it starts
then never take these signals: they reach the main thread, where Python and
the trainer's preemption handling see them, or stay pending while TensorFlow
holds that thread (see `bn_zoo.training.cluster.deadline`).
"""

import glob
import os
import re
import signal
import sys
import tempfile

# absl's -v/--verbosity levels -> TF_CPP_MIN_LOG_LEVEL (0 info ... 3 fatal).
_VERBOSITY_NAMES = {"debug": 1, "info": 0, "warning": -1, "error": -2, "fatal": -3}
_GLOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]\s]+:\d+\] ")
_TF_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) ")
_PYTHON_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"
_SEVERITIES = {"I": 0, "W": 1, "E": 2, "F": 3}


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


def cpp_log_level(verbosity):
    """TF_CPP_MIN_LOG_LEVEL for absl verbosity `verbosity` (None: the default, 2)."""
    if verbosity is None:
        return 2
    return min(3, max(0, -verbosity))


def has_nvidia_device():
    """Whether the machine has an NVIDIA device node (then a failed cuInit matters)."""
    return bool(glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/nvidiactl"))


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
    """Sets TF_CPP_MIN_LOG_LEVEL and starts TensorFlow with stderr captured."""
    if "tensorflow" in sys.modules:  # Too late (e.g. under pytest): leave it be.
        return
    verbosity = verbosity_argument(sys.argv)
    default = verbosity is None and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", str(cpp_log_level(verbosity)))
    try:
        level = int(os.environ["TF_CPP_MIN_LOG_LEVEL"])
    except ValueError:
        level = 0
    if level <= 0:
        _start_tensorflow()
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # No stderr to capture.
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        failed = True
        try:
            _start_tensorflow()
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            if not failed:
                text = kept_lines(text, level, default and not has_nvidia_device())
            if text:
                os.write(2, text.encode("utf-8"))


def _our_directories():
    import bn_zoo

    dirs = [os.path.dirname(bn_zoo.__file__), os.path.dirname(__file__)]
    configs = sys.modules.get("configs")
    if configs is not None and getattr(configs, "__file__", None):
        dirs.append(os.path.dirname(configs.__file__))
    return tuple(os.path.realpath(d) + os.sep for d in dirs)


class OnlyOurInfo:
    """A logging filter: records of bn_zoo, trainers/ and configs/ at any
    level; other libraries' records only at ERROR and above."""

    def __init__(self):
        self._ours = _our_directories()
        self._seen = {}

    def filter(self, record):
        import logging

        if record.levelno >= logging.ERROR:
            return True
        path = record.pathname
        if path not in self._seen:
            self._seen[path] = os.path.realpath(path).startswith(self._ours)
        return self._seen[path]


def set_up_logging():
    """Python logging of an entry point, by the rule in the module docstring.

    Call it at the start of `main` (after absl parsed the flags and installed
    its handler). Without `--verbosity`: absl level INFO, and a filter on the
    handlers that hides other libraries' records below ERROR. With it:
    absl's own rule, untouched.
    """
    import logging as std_logging

    from absl import flags, logging

    if flags.FLAGS["verbosity"].present:
        return
    logging.set_verbosity(logging.INFO)
    only_ours = OnlyOurInfo()
    handlers = {logging.get_absl_handler()}
    for logger in (std_logging.getLogger(), std_logging.getLogger("tensorflow")):
        handlers.update(logger.handlers)
    for handler in handlers:
        if not any(isinstance(f, OnlyOurInfo) for f in handler.filters):
            handler.addFilter(only_ours)


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


_quiet_start()
_require_tensorflow_backend()
