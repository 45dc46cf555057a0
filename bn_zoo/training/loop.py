"""The training loop of one run (`Run`), behind `bn_zoo.training.train`.

`Run(config, strategy, data, workdir).train()` builds the model, its
optimizer and the input pipelines, resumes from the workdir's newest
checkpoint (or starts fresh: initial weights, freezing), trains in loops of
many steps per `tf.function` call, logs, evaluates and checkpoints at
intervals, and at the end estimates the population statistics of
Algorithm 2 (Section 3.1) and evaluates with them.

The order of events at a step s is: train up to s, check the loss and weights
are finite, log, evaluate (append a metrics row), checkpoint. A run killed
after the evaluation of s but before its checkpoint resumes from an earlier
checkpoint and drops the rows after it, so every evaluation step appears once.

A fresh run starts from `config.model.weights` if set (`warm_start`: the
backbone loaded, a head of another class count built new); a resumed one
from its checkpoint alone. `config.model.freeze` freezes the backbone or the
BN layers for the whole run or its first `freeze_steps` steps (`freezing`),
after estimating the statistics of BN layers whose moving averages have not
caught up. The class names of the data are written to `labels.txt`.

The checkpoints hold the training state exactly as training left it: every
BN layer trains and evaluates with its moving averages, and the metrics rows
(`eval_*`) are those of the moving averages. The end-of-run population
statistics are saved apart, in `population/ckpt-<step>`, with both
accuracies in final.json, so a resumed or extended run continues from the
untouched checkpoint.
"""

import math
import os
import time

import tensorflow as tf
from absl import logging

from bn_zoo import population, runs
from bn_zoo.training import checkpoints as checkpoints_lib
from bn_zoo.training import console, freezing, modeling, optimizers, preemption, progress
from bn_zoo.training import steps, summaries, warm_start
from bn_zoo.training.errors import ConfigError, NonFiniteLossError, Preempted

BASE_COLUMNS = ("step", "train_loss", "train_accuracy", "eval_loss", "eval_accuracy",
                "eval_top5_accuracy", "learning_rate")


def _next_boundary(step, config, freeze=None):
    """The first step after `step` at which the loop must return to Python
    (also where a freeze schedule changes phase)."""
    ends = [config.num_train_steps, step + config.steps_per_loop]
    unfreeze = freeze.boundary(step) if freeze is not None else None
    if unfreeze is not None:
        ends.append(unfreeze)
    for every in (config.log_every_steps, config.eval_every_steps, config.checkpoint_every_steps):
        ends.append((step // every + 1) * every)
    return min(ends)


def _at(step, every, config):
    return step % every == 0 or step == config.num_train_steps


class _Interval:
    """Training loss and accuracy summed over the steps after `start` (the
    steps start + 1 ... of a progress line or an evaluation's window)."""

    def __init__(self, start=0):
        self.start = start
        self.loss = self.correct = self.count = 0.0

    def add(self, sums):
        self.loss += sums["loss"]
        self.correct += sums["correct"]
        self.count += sums["count"]

    def means(self):
        if not self.count:
            return {"train_loss": None, "train_accuracy": None}
        return {"train_loss": self.loss / self.count, "train_accuracy": self.correct / self.count}


class Run:
    """The state of one run: `Run(config, strategy, data, workdir).train()`
    trains it to `config.num_train_steps` and returns final.json's contents."""

    def __init__(self, config, strategy, data, workdir):
        self._built = time.perf_counter()
        logging.info("Building the model, its optimizer and the input pipelines...")
        self.config = config
        self.strategy = strategy
        self.data = data
        self.workdir = workdir
        with strategy.scope():
            self.model = modeling.create_model(config)
            # Built for every variable that trains at some step; a frozen
            # phase updates its subset.
            variables = self.model.trainable_variables
            self.optimizer = optimizers.create_optimizer(config, variables)
            self.optimizer.build(variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.freeze = freezing.Schedule(self.model, config.model.freeze,
                                        config.model.freeze_steps)
        self.steps = steps.Steps(config, strategy, self.model, self.optimizer)
        self.checkpointer = checkpoints_lib.Checkpointer(
            workdir, strategy, config.max_checkpoints_to_keep,
            model=self.model, optimizer=self.optimizer, step=self.step,
        )
        self.probe = None
        if config.probe.layer:
            self.probe = steps.Probe(
                self.model, config.probe.layer, config.probe.unit, config.probe.percentiles,
                data.probe_examples(config.probe.num_examples),
            )
        self.eval_dataset = strategy.distribute_datasets_from_function(
            data.eval_dataset_fn(config.eval_batch_size)
        )
        self.has_bn = bool(population.batch_normalization_layers(self.model))
        self.eta = progress.TimeLeft(config.num_train_steps)
        self._evaluated = False
        check_values_per_channel(self.model, config, strategy)

    # ------------------------------------------------------------ helpers
    def _columns(self):
        return list(BASE_COLUMNS) + (self.probe.columns if self.probe else [])

    def _evaluate(self, step, interval):
        """Evaluates at `step`, appends the metrics row (with the training
        means of `interval`) and prints it."""
        start = time.perf_counter()
        if not self._evaluated:
            logging.info("Evaluating step %d (the first evaluation traces the evaluation "
                         "step)...", step)
        row = {"step": step, **interval.means(), **self.steps.evaluate(self.eval_dataset),
               "learning_rate": optimizers.current_learning_rate(self.optimizer)}
        if self.probe is not None:
            row.update(self.probe())
        self.metrics.append(row)
        self.writer.scalars({key.replace("_", "/", 1): value for key, value in row.items()
                             if key.startswith(("eval_", "probe_"))},  # train/*: _log.
                            step)
        self._evaluated = True
        logging.info("%s", progress.evaluation_line(
            row, self.config.num_train_steps, interval.start, time.perf_counter() - start))
        return row

    def _log(self, step, interval, steps_per_second):
        means = interval.means()
        lr = optimizers.current_learning_rate(self.optimizer)
        self.writer.scalars({"train/loss": means["train_loss"],
                             "train/accuracy": means["train_accuracy"],
                             "train/learning_rate": lr,
                             "train/steps_per_second": steps_per_second}, step)
        logging.info("%s", progress.training_line(
            step, self.config.num_train_steps, interval.start, means, lr, steps_per_second,
            self.eta.seconds_left(step)))

    def _check_finite(self, loss_sum, start, end):
        if math.isfinite(loss_sum) and bool(self.steps.weights_finite()):
            return
        latest = self.checkpointer.latest
        kept = f"the last good checkpoint {latest} is kept" if latest else "no checkpoint was saved"
        raise NonFiniteLossError(
            f"The training loss or the weights became NaN/Inf between step {start} and "
            f"step {end}; training stopped and {kept}. Lower "
            "config.optimizer.base_learning_rate (or check the input data) and rerun."
        )

    def _start_fresh(self):
        """A fresh run: the initial weights, and the statistics of the BN
        layers it freezes (before anything is written)."""
        config = self.config
        if config.model.weights:
            started = time.perf_counter()
            logging.info("Loading the initial weights (config.model.weights=%s)...",
                         config.model.weights)
            loaded = warm_start.load(self.model, config.model.name, config.model.weights)
            logging.info("%s", loaded.summary())
            if loaded.reset_statistics:
                logging.info("The weights chose population statistics for %d BN layer(s); "
                             "training and its evaluations use the moving averages.",
                             len(loaded.reset_statistics))
            logging.info("Loaded the weights in %s.",
                         console.duration(time.perf_counter() - started))
        if self.freeze.active and self.freeze.frozen_at(0):
            layers = self.freeze.frozen_batch_norm_layers()
            if layers:
                batches = config.model.freeze_estimate_batches
                started = time.perf_counter()
                try:
                    estimate = freezing.estimate_before_freezing(
                        self.model, layers,
                        self.data.population_dataset(config.global_batch_size, config.seed),
                        batches)
                except ValueError as error:  # e.g. data that ran out.
                    raise ConfigError(
                        f"Estimating the statistics of the BN layers to freeze failed: {error} "
                        "Nothing was written. Lower config.model.freeze_estimate_batches (0: "
                        "freeze them as they are).") from error
                log = logging.warning if estimate.warning else logging.info
                log("%s%s", estimate.message, "" if not estimate.batches else
                    f" ({console.duration(time.perf_counter() - started)})")

    def _after_restore(self, restored):
        """Training checkpoints written by an older bn_zoo's end-of-run
        estimate chose population statistics: they train and evaluate with
        their moving averages again (they are untouched in the checkpoint)."""
        layers = [layer for layer in population.batch_normalization_layers(self.model)
                  if layer.inference_statistics == "population"]
        if layers:
            population.set_inference_statistics(self.model, "moving")
            logging.info("%s chose population statistics for %d BN layer(s) (an older "
                         "bn_zoo wrote them there at the end of the run); this run trains "
                         "and evaluates with the moving averages it holds.", restored,
                         len(layers))

    def _write_class_names(self):
        """labels.txt: the data's class names, or the indices, one per output."""
        outputs = self.model.output_shape[-1]
        names = getattr(self.data, "class_names", None)
        if names is not None and len(names) != outputs:
            logging.info("The data names %d classes and the model has %d outputs; "
                         "labels.txt names the outputs by index.", len(names), outputs)
            names = None
        if names is None:
            names = [str(i) for i in range(outputs)]
        if self.workdir.chief:
            runs.write_class_names(self.workdir.path, [str(n) for n in names])

    # --------------------------------------------------------------- loop
    def train(self):
        config, workdir = self.config, self.workdir
        restored = self.checkpointer.restore_latest()
        step = int(self.step.numpy())
        if restored:
            logging.info("Resumed from %s at step %d.", restored, step)
            self._after_restore(restored)
        else:
            self._start_fresh()
        if self.freeze.active:
            logging.info("%s", self.freeze.describe())
        iterator = self._train_iterator(step)  # Before any write: it checks the split.
        # Every read that can refuse the run comes before its first write: a
        # resumed run's metrics.csv (a malformed row) and event files.
        rewrites, again = [], False
        if restored:
            self.metrics = runs.MetricsLog(
                workdir.file(runs.METRICS_FILE), self._columns(), chief=workdir.chief)
            if self.metrics.dropped:
                logging.info("%s %s (a run killed, or a disk filled, while writing it): "
                             "this run drops that line.", self.metrics.path,
                             self.metrics.dropped)
            again = self._row_missing(step)
            # The points at `step` this run writes again: its evaluation's, or
            # those of the end of the run.
            rewritten = (("eval/", "probe/") if again else
                         ("eval/accuracy_population", "eval/loss_population")
                         if step == config.num_train_steps else ())
            if workdir.chief:
                rewrites = summaries.plan_drop_after(workdir.tensorboard, step, rewritten)
        logging.info("Built in %s.", console.duration(time.perf_counter() - self._built))
        logging.info("%s", progress.legend(config, self.data, self.probe))
        if not restored:  # Leftovers of a run stopped before its first checkpoint go.
            workdir.start_afresh()
            self.metrics = runs.MetricsLog(
                workdir.file(runs.METRICS_FILE), self._columns(), chief=workdir.chief)
        workdir.write_config(config)
        self._write_class_names()
        self.metrics.truncate(step)
        for rewrite in rewrites or ():
            if rewrite.describe():
                logging.info("%s", rewrite.describe())
            rewrite.apply()
        self.writer = summaries.Writer(workdir.tensorboard if workdir.chief else None)
        try:
            with preemption.Watcher() as watcher:
                if not restored or again:
                    # A checkpoint at s is saved after the evaluation at s, so only a
                    # fresh run evaluates its starting point, and a resumed one whose
                    # row of s was dropped. (Deciding from the step and the metrics
                    # file keeps the workers of a multi-worker run in step.)
                    self._evaluate(step, _Interval(step))
                self._train_until_end(step, iterator, watcher, restored)
            final = self._finish()
        except BaseException:
            self.writer.close_quietly()  # The error on its way up is the one to report.
            raise
        self.writer.close()  # Before final.json: a finished run has all its events.
        if workdir.chief:
            runs.write_json(workdir.file(runs.FINAL_FILE), final)
        return final

    def _row_missing(self, step):
        """Whether a resumed run's metrics lack the evaluation at `step` (its
        cut-short row was dropped): it evaluates `step` again (the weights
        are those the checkpoint saved right after that evaluation)."""
        config = self.config
        evaluates = step > 0 and _at(step, config.eval_every_steps, config)
        if not evaluates or any(row["step"] == step for row in self.metrics.rows):
            return False
        logging.info("%s has no row for step %d: evaluating it again (its train_* cells "
                     "stay empty).", self.metrics.path, step)
        return True

    def _train_iterator(self, step):
        """The training batches from `step` on (None at the end); a ConfigError
        if the training split holds less than one global batch."""
        config = self.config
        if step >= config.num_train_steps:
            return None
        try:
            return iter(self.strategy.distribute_datasets_from_function(
                self.data.train_dataset_fn(config.global_batch_size, config.seed, step)))
        except ValueError as error:
            raise ConfigError(
                f"{error} Nothing was written. Use a larger config.data.train_split or a "
                "smaller config.global_batch_size.") from error

    def _stop(self, step, signum, watcher, saved):
        """Saves a checkpoint at `step` (unless there is one) and raises
        Preempted; `signum` is the signal this worker or a peer received."""
        by = "" if watcher.received else " by another worker"
        logging.info("%s received%s: saving a checkpoint at step %d (send it again to stop "
                     "at once).", signum.name, by, step)
        path = saved if saved and saved.endswith(f"-{step}") else self.checkpointer.save(step)
        raise Preempted(
            f"Stopped by {signum.name} at step {step} of {self.config.num_train_steps}: "
            f"saved {path}. Rerun the same command to resume.", 128 + int(signum))

    def _train_until_end(self, step, iterator, watcher, saved=None):
        config = self.config
        log_interval, eval_interval = _Interval(step), _Interval(step)
        log_time = 0.0
        log_steps = 0
        traced = set()  # The phases (frozen or not) whose step is traced.
        while step < config.num_train_steps:
            received = preemption.any_worker(self.strategy, watcher.received)
            if received:
                self._stop(step, received, watcher, saved)
            end = _next_boundary(step, config, self.freeze)
            frozen = self.freeze.frozen_at(step)
            if self.freeze.active and self.freeze.state is not None and \
                    frozen != self.freeze.state:
                logging.info("Unfreezing at step %d: every layer trains from step %d on.",
                             step, step + 1)
            self.freeze.apply(frozen)
            first = frozen not in traced
            if first:
                phase = ("" if not self.freeze.active else
                         " (frozen phase)" if frozen else " (unfrozen phase)")
                logging.info("Tracing the training step%s, then running steps %d-%d...",
                             phase, step + 1, end)
            start_time = time.perf_counter()
            self.steps.train_loop(iterator, tf.constant(end - step, tf.int32), frozen)
            sums = self.steps.train_sums.read_and_reset()
            log_time += time.perf_counter() - start_time
            log_steps += end - step
            if first:
                if not traced:
                    self.eta.start(end)
                traced.add(frozen)
                logging.info("Traced the training step and ran steps %d-%d in %s.",
                             step + 1, end, console.duration(time.perf_counter() - start_time))
            self._check_finite(sums["loss"], step, end)
            step = end
            self.step.assign(step)
            log_interval.add(sums)
            eval_interval.add(sums)
            if _at(step, config.log_every_steps, config):
                self._log(step, log_interval, log_steps / max(log_time, 1e-9))
                log_interval, log_time, log_steps = _Interval(step), 0.0, 0
            if _at(step, config.eval_every_steps, config):
                self._evaluate(step, eval_interval)
                eval_interval = _Interval(step)
            if _at(step, config.checkpoint_every_steps, config):
                saved = self.checkpointer.save(step)

    def _finish(self):
        """Final evaluation; Algorithm 2's population statistics if asked,
        saved apart from the training checkpoints (`population/`), which
        keep the moving averages a resumed or extended run continues from.
        Returns final.json's contents (`train` writes it)."""
        config = self.config
        last = self.metrics.rows[-1] if self.metrics.rows else {}
        final = {
            "step": config.num_train_steps,
            "eval_accuracy": last.get("eval_accuracy"),
            "eval_loss": last.get("eval_loss"),
            "inference_statistics": "moving" if self.has_bn else None,
        }
        if config.population_batches and self.has_bn:
            logging.info("Estimating the population statistics (Algorithm 2) from %d "
                         "training batches...", config.population_batches)
            start = time.perf_counter()
            # Frozen BN layers (freeze_steps None) are estimated too: the
            # inference network normalizes them with the same statistics.
            population.estimate(
                self.model,
                self.data.population_dataset(config.global_batch_size, config.seed),
                config.population_batches,
                include_frozen=True,
            )
            result = self.steps.evaluate(self.eval_dataset)
            final.update({
                "eval_accuracy_moving": final["eval_accuracy"],
                "eval_loss_moving": final["eval_loss"],
                "eval_accuracy_population": result["eval_accuracy"],
                "eval_loss_population": result["eval_loss"],
                "eval_accuracy": result["eval_accuracy"],
                "eval_loss": result["eval_loss"],
                "inference_statistics": "population",
                "population_batches": config.population_batches,
            })
            kept = checkpoints_lib.Checkpointer(
                self.workdir, self.strategy, 1, directory=self.workdir.population,
                model=self.model).save(config.num_train_steps)
            final["population_checkpoint"] = os.path.relpath(kept, self.workdir.path)
            self.writer.scalars({  # Beside eval/accuracy, the moving averages'.
                "eval/accuracy_population": result["eval_accuracy"],
                "eval/loss_population": result["eval_loss"]}, config.num_train_steps)
            logging.info("Population statistics from %d batches in %s: eval_accuracy "
                         "%.4f with the moving averages, %.4f with the population "
                         "statistics (the final result).",
                         config.population_batches,
                         console.duration(time.perf_counter() - start),
                         final["eval_accuracy_moving"], final["eval_accuracy_population"])
        return final


def check_values_per_channel(model, config, strategy):
    """Refuses, before anything is written, a per-replica batch that gives a
    BN layer m' <= 1 values per channel (Algorithm 1 needs a variance)."""
    per_replica = config.global_batch_size // strategy.num_replicas_in_sync
    if config.synchronized_batch_norm:
        per_replica = config.global_batch_size
    for layer in population.batch_normalization_layers(model):
        shape = layer.input.shape
        axis = layer.axis % len(shape)
        values = per_replica * math.prod(d for i, d in enumerate(shape[1:], 1) if i != axis)
        if values <= 1:
            raise ConfigError(
                f"config.global_batch_size={config.global_batch_size} gives BN layer "
                f"{layer.name!r} (input {tuple(shape)}) m' = {values} value per channel "
                f"on each of {strategy.num_replicas_in_sync} replica(s); training needs "
                "at least 2. Use a global batch of at least "
                f"{2 * strategy.num_replicas_in_sync}."
            )
