"""`train(config, workdir)`: the trainer behind `python -m trainers.train`.

One run: build the strategy and the data of a config, check the workdir, and
hand over to the training loop (`bn_zoo.training.loop.Run`), which resumes
from the workdir's newest checkpoint, trains, evaluates, checkpoints and
estimates the population statistics at the end. Rerunning the same command
continues where the last run stopped.

The order of a run's writes: it locks the workdir (`run.lock`: a second run
on it is refused, naming the first's host and pid), then makes every read
and check that can refuse it (config.json, final.json, the checkpoint, the
data, metrics.csv, the event files), then writes. A file found torn is
repaired, not refused: a config.json that does not parse is written again
from this run's config, a metrics row cut short is dropped (and its step
evaluated again if the run resumes there), an event file's torn last record
is cut off. A write that fails (a full disk) is one `DiskFullError` naming
the file, with nothing left half-written.

Multi-worker runs assume a workdir on a file system all workers share (e.g.
GCS); only the chief writes config, metrics, summaries and final.json.
"""

import contextlib
import copy
import errno
import functools
import os
import time

import keras
import tensorflow as tf
from absl import logging

from bn_zoo import runs
from bn_zoo.models import preprocess_input
from bn_zoo.training import cluster
from bn_zoo.training import config as config_lib
from bn_zoo.training import console, inputs, modeling, progress, summaries
from bn_zoo.training import strategy as strategy_lib
from bn_zoo.training import workdir as workdir_lib
from bn_zoo.training.errors import ConfigError, DiskFullError, TrainingError, WorkdirError
from bn_zoo.training.loop import BASE_COLUMNS, Run


@contextlib.contextmanager
def _dtype_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _with_recorded_classes(config, saved):
    """`config` with the `model.kwargs.classes` a run in the workdir took from
    its data (`modeling.data_classes`), for the check made before the data is
    read; the data's own count is checked again once it is."""
    recorded = ((saved or {}).get("model") or {}).get("kwargs") or {}
    if config.model.kwargs.get("classes") is not None or recorded.get("classes") is None:
        return config
    config = copy.deepcopy(config)
    config.model.kwargs["classes"] = recorded["classes"]
    return config


def train(config, workdir, connect_timeout=None):
    """Trains (or resumes) the run of `config` in `workdir`.

    Args:
        config: An experiment config (`ConfigDict` or dict shaped like
            `bn_zoo.training.config.default_config()`); fields left at None
            come from the model's recipe in the registry.
        workdir: Directory of the run (created if needed). Rerunning with the
            same config resumes from its newest checkpoint.
        connect_timeout: Seconds to wait for a TPU or the other workers of
            `TF_CONFIG` (None: `strategy.DEFAULT_CONNECT_TIMEOUT`).

    Returns:
        The contents of `workdir/final.json`: the final step, evaluation
        accuracy and loss, and, for BN models with `population_batches > 0`,
        the accuracy with moving averages and with population statistics.

    Raises:
        ConfigError, WorkdirError, DataError, ClusterError: before anything
            is written (a WorkdirError also when another live process trains
            in `workdir`: its lock `run.lock` names that process).
        NonFiniteLossError: the loss diverged; the last good checkpoint is kept.
        DiskFullError: a file of the run (a checkpoint, config.json,
            metrics.csv, labels.txt, final.json, an event file, run.lock)
            could not be written for lack of space; it is named, and nothing
            is left half-written (WorkdirError for a file system that turned
            read-only).
        Preempted: SIGTERM or SIGINT; a checkpoint was saved first.
    A run that fails before its first checkpoint removes what it wrote.
    """
    if keras.backend.backend() != "tensorflow":
        raise ConfigError(
            "The trainer runs on Keras' TensorFlow backend only (tf.distribute, "
            f"tf.data, TensorFlow checkpoints), and this process runs the "
            f"{keras.backend.backend()!r} backend. Rerun with KERAS_BACKEND=tensorflow. "
            "The layer, the models and bn_zoo.population also run on JAX and "
            "PyTorch (docs/layer.md)."
        )
    config = config_lib.resolve(config)
    strategy_lib.configure_cpu_devices(config.num_cpu_devices)
    strategy = strategy_lib.create_strategy(config.strategy, config.tpu, connect_timeout)
    strategy_lib.per_replica_batch_size(config.global_batch_size, strategy)
    strategy_lib.per_replica_batch_size(config.eval_batch_size, strategy, "eval_batch_size")
    strategy_lib.warn_if_bfloat16_is_emulated(config.mixed_precision, strategy)
    workdir = workdir_lib.Workdir(workdir, chief=strategy_lib.is_chief(strategy))
    workdir.check_writable()
    footprint = workdir.footprint()
    try:
        with workdir.lock():  # The first write: a workdir a live run holds is refused.
            try:
                return _train_locked(config, strategy, workdir)
            except BaseException:
                workdir.roll_back(footprint)  # Only if no checkpoint was saved.
                raise
    except OSError as error:
        failure = _write_failure(error, workdir)
        if failure is None:
            raise
        raise failure from error


def _write_failure(error, workdir):
    """The one-line error of a write that failed (`error`, an OSError whose
    `filename` names the file: a full disk, a file system turned read-only),
    or None if `error` is no such failure (or already one of ours)."""
    if isinstance(error, TrainingError) or error.errno not in runs.WRITE_ERRORS:
        return None
    path = error.filename or workdir.path
    inside = os.path.abspath(os.fspath(path)).startswith(workdir.path + os.sep)
    if error.errno in (errno.EACCES, errno.EPERM) and not inside:
        return None  # A file the run reads (its data), not one it writes.
    latest = tf.train.latest_checkpoint(workdir.checkpoints)
    if latest:
        kept, rerun = f"the newest checkpoint {latest} is kept", "to resume"
    else:
        kept, rerun = "no checkpoint was saved", "to start again"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        kind, fix = DiskFullError, "Free some space"
    else:  # The file system turned read-only, or the directory unwritable.
        kind, fix = WorkdirError, f"Make {workdir.path} writable again"
    return kind(f"Could not write {path} ({error.strerror}); nothing is left half-written "
                f"and {kept}. {fix} and rerun the same command {rerun}.")


def _has_torn_ends(workdir):
    """Whether a finished run's metrics.csv or an event file ends in a record
    cut short: the rerun then repairs them rather than returning at once."""
    metrics = runs.MetricsLog(workdir.file(runs.METRICS_FILE), BASE_COLUMNS, chief=False)
    return bool(metrics.dropped) or any(
        summaries.read_events(path)[1] for path in summaries.event_files(workdir.tensorboard))


def _train_locked(config, strategy, workdir):
    """`train` from its first read of the workdir, whose lock it holds."""
    workdir.check_config(_with_recorded_classes(config, workdir.resume_config()))
    latest = runs.latest_step(workdir.checkpoints)
    if latest is not None and latest > config.num_train_steps:
        raise WorkdirError(
            f"{workdir.path} already has a checkpoint at step {latest}, past "
            f"config.num_train_steps={config.num_train_steps}. Use a larger "
            "num_train_steps or a new --workdir."
        )
    final = workdir.resume_final()
    if final and final.get("step") == config.num_train_steps == latest and \
            not workdir.config_torn and not _has_torn_ends(workdir):
        logging.info("%s is already complete at step %d.", workdir.path, latest)
        return final
    logging.info("Training %s for %d steps with %s (%d replica%s), global batch %d, in %s.",
                 config.model.name, config.num_train_steps, type(strategy).__name__,
                 strategy.num_replicas_in_sync,
                 "" if strategy.num_replicas_in_sync == 1 else "s",
                 config.global_batch_size, workdir.path)
    preprocess = functools.partial(preprocess_input, mode=modeling.preprocessing_mode(config))
    started = time.perf_counter()
    logging.info("Loading the data (%s)...", progress.describe_data(config.data))
    data = inputs.create(config.data, preprocess, model=config.model)
    logging.info("Loaded the data in %s.", console.duration(time.perf_counter() - started))
    classes = modeling.data_classes(config, getattr(data, "num_classes", None))
    if classes is not None:
        config.model.kwargs["classes"] = classes
        logging.info("The data has %d classes: model.kwargs.classes=%d.", classes, classes)
        workdir.check_config(config)
    keras.utils.set_random_seed(config.seed)
    with _dtype_policy(config.mixed_precision), inputs.named_data_errors(data), \
            cluster.lost_workers():
        return Run(config, strategy, data, workdir).train()
