"""Errors the trainer reports as one clear message (and exit code 1)."""

from bn_zoo.data.tfrecords import DataError
# The workdir cannot be used (not a run, no readable checkpoint, a run of
# another config): raised by the trainer and by every reader of a run
# directory, so it lives with the run directory (bn_zoo.runs).
from bn_zoo.runs.run_dir import WorkdirError


class TrainingError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""


class ConfigError(TrainingError, ValueError):
    """The config has an unknown field or a value out of range."""


class DiskFullError(TrainingError, OSError):
    """The file system ran out of space (or quota) while the run wrote."""


class ClusterError(TrainingError, ConnectionError):
    """The cluster (TPU, TF_CONFIG workers) is misconfigured or unreachable."""


class Preempted(TrainingError):
    """SIGTERM or SIGINT stopped the run after it saved a checkpoint.

    `exit_code` is 128 + the signal number, as a shell reports a process
    ended by that signal."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


class NonFiniteLossError(TrainingError, FloatingPointError):
    """The loss or the weights became NaN or Inf; training stopped."""


# Errors `trainers/` turn into a one-line message and a non-zero exit code.
USER_ERRORS = (TrainingError, DataError, WorkdirError)
