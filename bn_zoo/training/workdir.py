"""The trainer's view of its workdir: a `bn_zoo.runs.RunDir` that also
checks a rerun's config against the run it would continue.

The layout, the atomic writes, metrics.csv and the readers live in
`bn_zoo.runs`; the names below are re-exported from there so that existing
imports (`bn_zoo.training.workdir.atomic_write`, `.read_csv`, `.MetricsLog`,
`.WRITE_ERRORS`, ...) keep working. New code imports `bn_zoo.runs`.
"""

import os

from absl import logging

from bn_zoo.runs.files import (  # noqa: F401 - re-exported
    WRITE_ERRORS,
    atomic_write,
    plain_write_mode,
    read_csv,
    read_json,
    unwritable,
    write_csv,
    write_json,
)
from bn_zoo.runs.run_dir import (  # noqa: F401 - re-exported
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    FINAL_FILE,
    LOCK_FILE,
    METRICS_FILE,
    TENSORBOARD_DIR,
    MetricsLog,
    RunDir,
    TornFileError,
    WorkdirError,
)
from bn_zoo.training import config as config_lib


class Workdir(RunDir):
    """A run directory about to be trained in (see `bn_zoo.runs.RunDir`).

    A torn config.json or final.json (which readers refuse) does not stop the
    trainer: `resume_config` and `resume_final` say so in one line and treat
    the file as absent, and the run writes it again once it has started.
    """

    _UNREAD = object()

    def __init__(self, path, chief=True):
        super().__init__(path, chief)
        self._saved = self._UNREAD
        self.config_torn = False

    def resume_config(self):
        """The saved config.json as a dict; None if absent, or torn (logged,
        and `config_torn` set). Read once: the run holds the lock."""
        if self._saved is self._UNREAD:
            try:
                self._saved = self.read_config()
            except TornFileError as error:
                self._saved, self.config_torn = None, True
                if self.has_checkpoint():
                    what = ("this run resumes from the newest checkpoint with the config of "
                            "this command (it must be the run's own: it is not checked)")
                else:
                    what = "this run has no checkpoint to resume and starts afresh"
                logging.info("%s %s: %s, and writes %s again once it has started.",
                             error.path, error.problem, what, CONFIG_FILE)
        return self._saved

    def resume_final(self):
        """The saved final.json as a dict; None if absent, or torn (logged:
        the run then finishes again and writes it anew)."""
        try:
            return self.read_final()
        except TornFileError as error:
            logging.info("%s %s: the run finishes again and writes it anew.", error.path,
                         error.problem)
            return None

    def check_config(self, config):
        """Raises WorkdirError if the workdir holds a run of another config.

        Fields in `config_lib.RUNTIME_FIELDS` (e.g. num_train_steps, strategy,
        data_dir) may change between reruns; the others must be equal, unless
        the workdir has no checkpoint (a run stopped before its first one
        left nothing to resume; the new run starts afresh).
        """
        saved = self.resume_config()
        if saved is None:
            if self.config_torn:
                return  # Said in resume_config; the checkpoint restore checks shapes.
            if os.path.isdir(self.checkpoints) and os.listdir(self.checkpoints):
                raise WorkdirError(
                    f"{self.path} has checkpoints but no {CONFIG_FILE}, so it cannot "
                    "tell which run they belong to. Use an empty --workdir."
                )
            return
        if not self.has_checkpoint():
            return  # A run stopped before its first checkpoint: nothing to resume.
        differ = config_lib.incompatible_fields(saved, config)
        if differ:
            flat_old = config_lib.flat_fields(saved)
            flat_new = config_lib.flat_fields(config)
            details = ", ".join(
                f"{p}: {flat_old.get(p, '<missing>')!r} -> {flat_new.get(p, '<missing>')!r}"
                for p in differ[:8]
            )
            raise WorkdirError(
                f"{self.path} holds a run with a different config ({details}). "
                "Nothing was changed. Rerun with the original values to resume it, "
                "or pass a new --workdir to start another run."
            )
