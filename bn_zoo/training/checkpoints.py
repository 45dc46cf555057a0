"""Saving a run's checkpoints while it trains (`Checkpointer`).

What a checkpoint holds, and choosing the one to restore (the newest
readable, `restore_newest_readable`), live in `bn_zoo.runs`, which every
reader of a run directory uses; the names below are re-exported from there
so that existing imports keep working. A save that fails for lack of space
removes its temporary files and keeps the previous checkpoints.
"""

import glob
import os
import shutil

import tensorflow as tf

from bn_zoo.runs import checkpoints as run_checkpoints
from bn_zoo.runs.checkpoints import (  # noqa: F401 - re-exported
    candidates,
    latest_step,
    restore,
    restore_newest_readable,
)
from bn_zoo.runs.files import WRITE_ERRORS
from bn_zoo.runs.trained_model import restore_model, save_weights  # noqa: F401 - re-exported
from bn_zoo.training import strategy as strategy_lib
from bn_zoo.training import write_failures
from bn_zoo.training.errors import DiskFullError


class Checkpointer:
    """Saves and restores a run's state in `workdir/checkpoints`.

    Every worker of a multi-worker run must save (saving is a collective
    operation); workers other than the chief write to a scratch directory that
    is deleted right after, and all restore from the chief's directory.

    `directory` (default `workdir/checkpoints`) names another directory of
    the run: `workdir/population` holds the model with Algorithm 2's
    population statistics, apart from the training checkpoints.
    """

    def __init__(self, workdir, strategy, max_to_keep, directory=None, **objects):
        self.checkpoint = tf.train.Checkpoint(**objects)
        self._model = objects["model"]
        self.directory = directory or workdir.checkpoints
        task_type, task_id = strategy_lib.task(strategy)
        self._scratch = None
        save_dir = self.directory
        if not workdir.chief:
            self._scratch = os.path.join(self.directory, f"{task_type}_{task_id}_scratch")
            save_dir = self._scratch
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, save_dir, max_to_keep=max_to_keep, step_counter=None
        )

    def restore_latest(self):
        """Restores the newest readable checkpoint (`restore_newest_readable`);
        returns its path or None."""
        return run_checkpoints.restore_newest_readable(
            self.checkpoint, self.directory, self._model)

    def save(self, step):
        """Saves `ckpt-<step>`; returns its path (on every worker, the chief's
        copy: the others' scratch copies are removed).

        Raises:
            DiskFullError: the file system is full; the temporary files of
                this save are removed and the previous checkpoints kept.
        """
        save_dir = self._scratch or self.directory
        try:
            path = self.manager.save(checkpoint_number=step)
        except (tf.errors.ResourceExhaustedError, OSError) as error:
            if isinstance(error, OSError) and error.errno not in WRITE_ERRORS:
                raise
            for temp in glob.glob(os.path.join(save_dir, f"ckpt-{step}_temp*")):
                shutil.rmtree(temp, ignore_errors=True)
            latest = tf.train.latest_checkpoint(self.directory)
            kept = f"the newest checkpoint {latest} is kept" if latest else "no checkpoint was saved"
            target = os.path.join(save_dir, f"ckpt-{step}")
            reason = write_failures.os_error(error, target).strerror
            raise DiskFullError(
                f"Could not write checkpoint {target} ({reason}); its temporary files were "
                f"removed and {kept}. Free some space and rerun the same command to "
                "resume.") from error
        finally:
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
        if self._scratch is not None:
            path = os.path.join(self.directory, os.path.basename(path))
        return path

    @property
    def latest(self):
        return tf.train.latest_checkpoint(self.directory)
