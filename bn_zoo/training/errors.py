"""Errors the trainer reports as one clear message (and exit code 1)."""

from bn_zoo.data.tfrecords import DataError


class TrainingError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""


class ConfigError(TrainingError, ValueError):
    """The config has an unknown field or a value out of range."""


class WorkdirError(TrainingError, ValueError):
    """The workdir holds a run that the config cannot continue."""


class NonFiniteLossError(TrainingError, FloatingPointError):
    """The loss or the weights became NaN or Inf; training stopped."""


# Errors `trainers/` turn into a one-line message and a non-zero exit code.
USER_ERRORS = (TrainingError, DataError)
