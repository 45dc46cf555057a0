"""The trainer's view of its workdir: a `bn_zoo.runs.RunDir` that also
checks a rerun's config against the run it would continue.

The layout, the atomic writes, metrics.csv and the readers live in
`bn_zoo.runs`; the names below are re-exported from there so that existing
imports (`bn_zoo.training.workdir.atomic_write`, `.read_csv`, `.MetricsLog`,
`.WRITE_ERRORS`, ...) keep working. New code imports `bn_zoo.runs`.
"""

import os

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
    METRICS_FILE,
    TENSORBOARD_DIR,
    MetricsLog,
    RunDir,
    WorkdirError,
)
from bn_zoo.training import config as config_lib


class Workdir(RunDir):
    """A run directory about to be trained in (see `bn_zoo.runs.RunDir`)."""

    def check_config(self, config):
        """Raises WorkdirError if the workdir holds a run of another config.

        Fields in `config_lib.RUNTIME_FIELDS` (e.g. num_train_steps, strategy,
        data_dir) may change between reruns; the others must be equal, unless
        the workdir has no checkpoint (a run stopped before its first one
        left nothing to resume; the new run starts afresh).
        """
        saved = self.read_config()
        if saved is None:
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
