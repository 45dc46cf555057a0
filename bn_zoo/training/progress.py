"""The text of the trainer's progress lines (`bn_zoo.training.train`).

A run prints, through absl logging (bn_zoo.training.console gives them a
`[H:MM:SS]` time stamp in the commands):

    Training bn_mlp for 200 steps with _DefaultDistributionStrategy (1 replica), ...
    Loading the data (mnist: train on 'train', evaluate on 'test', from ...)...
    Loaded the data in 1.2 s.
    Columns (as in metrics.csv): ...                      (the legend, once)
    Evaluating step 0 (the first evaluation traces the evaluation step)...
    eval at step 0/200: eval_loss 2.5126, eval_accuracy 0.0892, ... (2.1 s)
    Tracing the training step, then running steps 1-50...
    Traced the training step and ran steps 1-50 in 1.3 s.
    step 50/200 (25%): train_loss 1.4056, train_accuracy 0.6323 over steps 1-50; ...
    eval at step 100/200: ...; train_loss 1.0816, train_accuracy 0.7255 over steps 1-100; ...

`train_loss` and `train_accuracy` are means over the training batches of the
steps named on the line: on a progress line (`step N/T`) the steps since the
previous one (config.log_every_steps), on an `eval at step` line and in
metrics.csv the steps since the previous evaluation (config.eval_every_steps),
or since the run resumed (the running sums are not checkpointed).
So the two lines of one step show different training means, each labelled
with its steps.
"""

import time

from bn_zoo.training import console

_EVAL_COLUMNS = ("eval_loss", "eval_accuracy", "eval_top5_accuracy")


class TimeLeft:
    """The time a run has left, from its mean speed since `start()` (called
    after the first, traced, training loop), evaluations and checkpoints
    included."""

    def __init__(self, total_steps):
        self.total_steps = total_steps
        self._start_time = None
        self._start_step = None

    def start(self, step):
        self._start_time, self._start_step = time.perf_counter(), step

    def seconds_left(self, step):
        """Seconds until the last step, or None before two points are known."""
        if self._start_time is None or step <= self._start_step:
            return None
        rate = (step - self._start_step) / max(time.perf_counter() - self._start_time, 1e-9)
        return (self.total_steps - step) / rate


def describe_data(data):
    """A short description of `config.data`: source, splits, directory."""
    import os

    name = data.get("name", "data")
    if data.get("directory"):  # image_folder
        held_out = data.get("validation_directory") or (
            f"validation_split={data.get('validation_split')} of it")
        return f"{name}: {data.get('directory')}, evaluate on {held_out}"
    if data.get("dataset"):  # tfds
        name = f"{name} {data.get('dataset')}"
    if data.get("source"):
        name = f"{name} ({data.get('source')})"
    where = data.get("data_dir") or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    return (f"{name}: train on {data.get('train_split')!r}, evaluate on "
            f"{data.get('eval_split')!r}, from {where}")


def legend(config, data, probe):
    """What the columns of the progress lines (and metrics.csv) mean, one
    column group a line."""
    eval_split = config.data.get("eval_split", "evaluation")
    lines = [
        "Columns (as in metrics.csv):",
        "  train_loss, train_accuracy: mean over the training batches of the steps named "
        f"on the line (step lines: the last {config.log_every_steps} steps; 'eval at step' "
        "lines and metrics.csv: the steps since the previous evaluation, or since the "
        "run resumed)",
        f"  eval_loss, eval_accuracy, eval_top5_accuracy: the {eval_split!r} split, "
        "BN with its moving averages",
        "  lr: the learning rate",
    ]
    if probe is not None:
        names = "/".join(c.replace("probe_", "") for c in probe.columns)
        ranks = ", ".join(f"{p:g}th" for p in probe.percentiles)
        lines.append(
            f"  probe_{names}: the {ranks} percentiles of unit {config.probe.unit} of the "
            f"input of layer {config.probe.layer!r} over the first "
            f"{config.probe.num_examples} {eval_split!r} images (Figure 1(b, c))")
    return "\n".join(lines)


def _steps(start, end):
    return f"step {end}" if end == start + 1 else f"steps {start + 1}-{end}"


def training_line(step, total, start, means, lr, steps_per_second, seconds_left):
    """The progress line at `step`: the training means over steps start+1..step,
    the learning rate, the speed and the time left."""
    eta = "" if seconds_left is None or step >= total else (
        f", {console.duration(seconds_left)} left")
    return (f"step {step}/{total} ({100 * step / total:.0f}%): "
            f"train_loss {means['train_loss']:.4f}, train_accuracy "
            f"{means['train_accuracy']:.4f} over {_steps(start, step)}; lr {lr:.4g}; "
            f"{steps_per_second:.1f} steps/s{eta}")


def evaluation_line(row, total, start, seconds):
    """The `eval at step` line of a metrics row: the evaluation, the training means
    over steps start+1..step (none at a run's first step), the probe."""
    step = row["step"]
    parts = [", ".join(f"{k} {row[k]:.4f}" for k in _EVAL_COLUMNS if row.get(k) is not None)]
    if row.get("train_loss") is not None:
        parts.append(f"train_loss {row['train_loss']:.4f}, train_accuracy "
                     f"{row['train_accuracy']:.4f} over {_steps(start, step)}")
    probes = [k for k in row if k.startswith("probe_") and row[k] is not None]
    if probes:
        names = "/".join(k.replace("probe_", "") for k in probes)
        parts.append(f"probe_{names} " + " ".join(f"{row[k]:.4f}" for k in probes))
    return f"eval at step {step}/{total}: {'; '.join(parts)} ({console.duration(seconds)})"
