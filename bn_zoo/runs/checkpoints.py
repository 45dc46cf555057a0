"""The checkpoints of a run directory, and choosing the one to restore.

A checkpoint `checkpoints/ckpt-<step>` (written by `tf.train.CheckpointManager`)
holds the model (weights, BN moving averages and population statistics), the
optimizer (slots, iteration count) and the global step. The manager writes
through temporary files, so a run killed while saving keeps the previous
checkpoint; a checkpoint can still be unreadable afterwards (a truncated or
deleted data file). `restore_newest_readable` is the one place that picks the
checkpoint every reader restores: the newest that can be read, each newer
unreadable one skipped with a warning naming it and the one used instead.
"""

import glob
import os
import re

import tensorflow as tf
from absl import logging

from bn_zoo import population
from bn_zoo.runs.run_dir import WorkdirError

_CHECKPOINT_NAME = re.compile(r"ckpt-(\d+)")
# What restoring an unreadable checkpoint raises: a missing or damaged file
# (OpError, OSError), an index that names other variables (AssertionError,
# ValueError), a truncated data file (IndexError).
_UNREADABLE = (tf.errors.OpError, ValueError, IndexError, AssertionError, OSError)


def step_of(path):
    """The step of checkpoint `path` (`.../ckpt-<step>`)."""
    return int(os.fspath(path).rsplit("-", 1)[1])


def latest_step(directory):
    """The step of the newest checkpoint `directory` names, or None (the
    newest listed, readable or not: see `restore_newest_readable`)."""
    path = tf.train.latest_checkpoint(directory)
    return None if path is None else step_of(path)


def candidates(directory):
    """Paths of the checkpoints `directory`'s CheckpointManager state names,
    newest first."""
    state = tf.train.get_checkpoint_state(directory)
    if state is None:
        return []
    paths = list(state.all_model_checkpoint_paths)
    if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    paths = [p if os.path.isabs(p) else os.path.join(directory, p) for p in paths]
    return sorted(set(paths), key=step_of, reverse=True)


def checkpoint_paths(directory):
    """`[(step, path)]` of every `ckpt-<step>` with an index file in
    `directory`, oldest first (also those the manager no longer names)."""
    found = []
    for index in glob.glob(os.path.join(directory, "ckpt-*.index")):
        match = _CHECKPOINT_NAME.fullmatch(os.path.basename(index)[: -len(".index")])
        if match:
            found.append((int(match.group(1)), index[: -len(".index")]))
    return sorted(found)


def restore(checkpoint, path, model, expect_partial=False):
    """Restores `path` into `checkpoint` (a `tf.train.Checkpoint` holding
    `model`), insisting that every object matched.

    Checkpoints written before BN layers saved their choice of inference
    statistics (`use_population_statistics`) or counted their moving-average
    updates (`moving_statistics_updates`) lack those variables: they restore
    everything else, the layers keep their configured choice and a count of 0.

    Raises:
        AssertionError, ValueError: the checkpoint does not hold `model`'s
            variables (missing, or of other shapes).
        tf.errors.OpError, OSError, IndexError: its files cannot be read.
    """
    status = checkpoint.restore(path)
    if expect_partial:
        status.expect_partial()
    saved = [name for name, _ in tf.train.list_variables(path)]
    written_before_the_choice = population.batch_normalization_layers(model) and not all(
        any(variable in name for name in saved)
        for variable in ("use_population_statistics", "moving_statistics_updates")
    )
    if written_before_the_choice:
        status.expect_partial().assert_nontrivial_match()
    else:
        status.assert_existing_objects_matched()


def _files(path):
    return ", ".join(os.path.basename(f) for f in sorted(glob.glob(path + ".*"))) or "no files"


def restore_newest_readable(checkpoint, directory, model, expect_partial=False):
    """Restores the newest checkpoint of `directory` that can be read.

    A checkpoint whose files are missing, truncated or corrupt is skipped
    with a warning that names it and the checkpoint used instead.

    Args:
        checkpoint: A `tf.train.Checkpoint` holding `model` (and, to resume
            training, the optimizer and step).
        directory: The run's `checkpoints/` directory.
        model: The Keras model in `checkpoint`.
        expect_partial: Allow the checkpoint to hold objects `checkpoint`
            lacks (the optimizer, when only the model is restored).

    Returns:
        The path of the restored checkpoint, or None if `directory` has none.

    Raises:
        WorkdirError: `directory` names checkpoints and none can be read.
    """
    unreadable = []
    for path in candidates(directory):
        try:
            restore(checkpoint, path, model, expect_partial=expect_partial)
        except _UNREADABLE as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            unreadable.append(f"{path} ({_files(path)}: {type(error).__name__}: {reason})")
            continue
        for bad in unreadable:
            logging.warning("Checkpoint %s cannot be read; using the older checkpoint %s "
                            "instead.", bad, path)
        return path
    if unreadable:
        raise WorkdirError(
            f"No checkpoint in {directory} can be read: {'; '.join(unreadable)}. Move "
            "them away to start the run afresh, or use a new --workdir.")
    return None
