"""The run directory: what `bn_zoo.training.train` writes and everything else reads.

    RUN_DIR/                (--workdir of trainers.train)
      config.json           the resolved config (every field has a value)
      metrics.csv           one row per evaluation step
      final.json            the final accuracies and the BN statistics
                            inference uses (a finished run only)
      labels.txt            the class names, one per line in output order
      checkpoints/          ckpt-<step>.{index,data-*} (tf.train.CheckpointManager)
      population/           ckpt-<step>: the model with Algorithm 2's statistics
      tensorboard/          event files (train/ and eval/)
      run.lock              while a run trains: its host, pid and start time
                            (a flock keeps a second run out: `RunDir.lock`)

The trainer writes it; export, evaluation and the paper's tools read it
through this package alone:

    from bn_zoo import runs
    config = runs.read_config(run_dir)          # dict; WorkdirError if absent
    rows = runs.read_metrics(run_dir)           # metrics.csv rows, by step
    final = runs.read_final(run_dir)            # dict, or None if unfinished
    names = runs.read_class_names(run_dir)      # tuple of str, or None
    run = runs.restore(run_dir)                 # .model .checkpoint .step .config
    model = runs.restore_model(run_dir)         # softmax outputs, final BN statistics

Which checkpoint is restored is decided in one place,
`restore_newest_readable`: the newest that can be read. Files are written
atomically (`atomic_write`, `write_json`, `write_csv`); a file found torn
anyway (a config.json that does not parse, a metrics row cut short) is a
`TornFileError` (a `WorkdirError`) naming the file and the fix.

This package sits between the models and the trainer: it imports
`bn_zoo.models` and `bn_zoo.population`, and nothing of `bn_zoo.training`.
"""

from bn_zoo.runs.checkpoints import (
    candidates,
    checkpoint_paths,
    latest_step,
    restore_newest_readable,
    step_of,
)
from bn_zoo.runs.checkpoints import restore as restore_checkpoint
from bn_zoo.runs.files import (
    WRITE_ERRORS,
    atomic_write,
    plain_write_mode,
    read_csv,
    read_json,
    unwritable,
    write_csv,
    write_json,
)
from bn_zoo.runs.trained_model import Restored, build_model, restore, restore_model, save_weights
from bn_zoo.runs.run_dir import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    FINAL_FILE,
    LABELS_FILE,
    LOCK_FILE,
    METRICS_FILE,
    POPULATION_DIR,
    TENSORBOARD_DIR,
    MetricsLog,
    RunDir,
    TornFileError,
    WorkdirError,
    model_name,
    read_class_names,
    read_config,
    read_final,
    read_metrics,
    to_json_dict,
    write_class_names,
)

__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "FINAL_FILE",
    "LABELS_FILE",
    "LOCK_FILE",
    "METRICS_FILE",
    "POPULATION_DIR",
    "TENSORBOARD_DIR",
    "WRITE_ERRORS",
    "MetricsLog",
    "Restored",
    "RunDir",
    "TornFileError",
    "WorkdirError",
    "atomic_write",
    "build_model",
    "candidates",
    "checkpoint_paths",
    "latest_step",
    "model_name",
    "plain_write_mode",
    "read_class_names",
    "read_config",
    "read_csv",
    "read_final",
    "read_json",
    "read_metrics",
    "restore",
    "restore_checkpoint",
    "restore_model",
    "restore_newest_readable",
    "save_weights",
    "step_of",
    "to_json_dict",
    "unwritable",
    "write_class_names",
    "write_csv",
    "write_json",
]
