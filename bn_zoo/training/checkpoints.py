"""Checkpoints of a run (`tf.train.CheckpointManager`) and `restore_model`.

A checkpoint holds the model (weights, BN moving averages and population
statistics), the optimizer (slots, iteration count) and the global step, and
is named `ckpt-<step>`. `CheckpointManager` writes through temporary files, so
a run killed while saving keeps the previous checkpoint. A checkpoint that
cannot be read (e.g. a truncated file) is skipped with a warning naming it and
the older one used instead; a save that fails for lack of space removes its
temporary files and keeps the previous checkpoints.
"""

import glob
import os
import shutil

import tensorflow as tf
from absl import logging

from bn_zoo import population
from bn_zoo.training import config as config_lib
from bn_zoo.training import modeling
from bn_zoo.training import strategy as strategy_lib
from bn_zoo.training import workdir as workdir_lib
from bn_zoo.training.errors import DiskFullError, WorkdirError


def latest_step(directory):
    """The step of the newest checkpoint in `directory`, or None."""
    path = tf.train.latest_checkpoint(directory)
    return None if path is None else int(path.rsplit("-", 1)[1])


def restore(checkpoint, path, model, expect_partial=False):
    """Restores `path` into `checkpoint`, insisting that every object matched.

    Checkpoints written before BN layers saved their choice of inference
    statistics (`use_population_statistics`) lack that one variable: they
    restore everything else, and the layers keep their configured choice.
    """
    status = checkpoint.restore(path)
    if expect_partial:
        status.expect_partial()
    saved = [name for name, _ in tf.train.list_variables(path)]
    # ... or, written before BN layers counted their moving-average updates,
    # `moving_statistics_updates` (they restore with a count of 0).
    written_before_the_choice = population.batch_normalization_layers(model) and not all(
        any(variable in name for name in saved)
        for variable in ("use_population_statistics", "moving_statistics_updates")
    )
    if written_before_the_choice:
        status.expect_partial().assert_nontrivial_match()
    else:
        status.assert_existing_objects_matched()


def candidates(directory):
    """Paths of the checkpoints in `directory`, newest first."""
    state = tf.train.get_checkpoint_state(directory)
    if state is None:
        return []
    paths = list(state.all_model_checkpoint_paths)
    if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    paths = [p if os.path.isabs(p) else os.path.join(directory, p) for p in paths]
    return sorted(set(paths), key=lambda p: int(p.rsplit("-", 1)[1]), reverse=True)


def _files(path):
    return ", ".join(os.path.basename(f) for f in sorted(glob.glob(path + ".*"))) or "no files"


def restore_newest_readable(checkpoint, directory, model, expect_partial=False):
    """Restores the newest checkpoint of `directory` that can be read.

    A checkpoint whose files are missing, truncated or corrupt is skipped
    with a warning that names it and the checkpoint used instead.

    Returns:
        The path of the restored checkpoint, or None if `directory` has none.

    Raises:
        WorkdirError: `directory` names checkpoints and none can be read.
    """
    paths = candidates(directory)
    unreadable = []
    for path in paths:
        try:
            restore(checkpoint, path, model, expect_partial=expect_partial)
        except (tf.errors.OpError, ValueError, IndexError, AssertionError, OSError) as error:
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


class Checkpointer:
    """Saves and restores a run's state in `workdir/checkpoints`.

    Every worker of a multi-worker run must save (saving is a collective
    operation); workers other than the chief write to a scratch directory that
    is deleted right after, and all restore from the chief's directory.
    """

    def __init__(self, workdir, strategy, max_to_keep, **objects):
        self.checkpoint = tf.train.Checkpoint(**objects)
        self._model = objects["model"]
        self.directory = workdir.checkpoints
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
        return restore_newest_readable(self.checkpoint, self.directory, self._model)

    def save(self, step):
        """Saves `ckpt-<step>`; returns its path.

        Raises:
            DiskFullError: the file system is full; the temporary files of
                this save are removed and the previous checkpoints kept.
        """
        save_dir = self._scratch or self.directory
        try:
            path = self.manager.save(checkpoint_number=step)
        except (tf.errors.ResourceExhaustedError, OSError) as error:
            if isinstance(error, OSError) and error.errno not in workdir_lib.WRITE_ERRORS:
                raise
            for temp in glob.glob(os.path.join(save_dir, f"ckpt-{step}_temp*")):
                shutil.rmtree(temp, ignore_errors=True)
            latest = tf.train.latest_checkpoint(self.directory)
            kept = f"the newest checkpoint {latest} is kept" if latest else "no checkpoint was saved"
            reason = str(error).strip().splitlines()[0]
            raise DiskFullError(
                f"Could not write checkpoint {os.path.join(save_dir, f'ckpt-{step}')} "
                f"({reason}); its temporary files were removed and {kept}. Free some "
                "space and rerun the same command to resume.") from error
        finally:
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
        return path

    @property
    def latest(self):
        return tf.train.latest_checkpoint(self.directory)


def restore_model(workdir, classifier_activation="softmax"):
    """The trained model of a workdir, ready for inference or export.

    Builds the model of `workdir/config.json` (float32, on the default
    strategy), loads the weights and BN statistics of the newest readable
    checkpoint (an unreadable newer one is skipped with a warning naming both),
    and, if the run finished with Algorithm 2's population statistics
    (`final.json` says `"inference_statistics": "population"` for that step),
    makes every BN layer use them.

    Args:
        workdir: The run's workdir.
        classifier_activation: Activation of the classifier; the default
            "softmax" returns probabilities like keras.applications, None
            the logits the trainer trained on.

    Returns:
        A `keras.Model`.
    """
    wd = workdir_lib.Workdir(workdir)
    saved = wd.saved_config()
    if saved is None:
        raise WorkdirError(f"{wd.path} has no {workdir_lib.CONFIG_FILE}: not a trainer workdir.")
    if tf.train.latest_checkpoint(wd.checkpoints) is None:
        raise WorkdirError(f"{wd.path} has no checkpoint yet; train first.")
    config = config_lib.resolve(saved)
    config.synchronized_batch_norm = False  # Inference needs no cross-replica statistics.
    model = modeling.create_model(config, classifier_activation=classifier_activation)
    path = restore_newest_readable(tf.train.Checkpoint(model=model), wd.checkpoints, model,
                                   expect_partial=True)
    final = workdir_lib.read_json(wd.file(workdir_lib.FINAL_FILE)) or {}
    if final.get("step") == int(path.rsplit("-", 1)[1]) and final.get(
        "inference_statistics") == "population":
        population.set_inference_statistics(model, "population")
    return model


def save_weights(workdir, path):
    """Writes the trained weights of a workdir (`restore_model`) to a Keras
    `*.weights.h5` file, atomically; returns the file's sha256."""
    from bn_zoo.models import weights as weights_lib

    path = os.path.abspath(os.fspath(path))
    if not path.endswith(".weights.h5"):
        raise ValueError(f"The weights file must end in '.weights.h5'; got {path!r}.")
    weights_lib.save_weights_atomically(restore_model(workdir), path)
    return weights_lib.sha256_of(path)
