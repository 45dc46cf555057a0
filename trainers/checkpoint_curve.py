r"""Evaluates every checkpoint of a run twice: with the BN moving averages and
with Algorithm 2's population statistics (Section 3.1).

    python -m trainers.checkpoint_curve --workdir=workdirs/ablation/bn_x30 \
        --population_batches=100

The trainer evaluates with the moving averages (momentum 0.99 by default),
which trail the weights by roughly 1/(1 − momentum) steps: when the weights
move fast, an evaluation can fall far below what the same weights give with
statistics of their own. For every `ckpt-<step>` of workdir/checkpoints this
restores the weights, evaluates on the run's evaluation split with the moving
averages, then estimates the population statistics from
`--population_batches` training batches (the run's global batch) and
evaluates again. It writes

    workdir/checkpoint_curve.csv   step, accuracy_moving, accuracy_population,
                                   loss_moving, loss_population

and prints the table. Keep every checkpoint of a run for a full curve, e.g.
`--config.checkpoint_every_steps=100 --config.max_checkpoints_to_keep=1000`
when training. TensorFlow only; the run's config.json picks model and data.
"""

from trainers import quiet  # First: quiets TensorFlow before it starts.

import glob
import os
import re

from absl import app, flags

from bn_zoo.training import cli

WORKDIR = cli.WORKDIR  # The run's workdir (trainers.train --workdir).
POPULATION_BATCHES = flags.DEFINE_integer(
    "population_batches", 100,
    "Training batches (of the run's global batch size) Algorithm 2 averages over.")
flags.mark_flag_as_required("workdir")


def checkpoint_paths(directory):
    """Every `ckpt-<step>` with an index file in `directory`, by step."""
    found = []
    for index in glob.glob(os.path.join(directory, "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
        if match:
            found.append((int(match.group(1)), index[: -len(".index")]))
    return sorted(found)


def _evaluate(model, dataset):
    """(accuracy, mean cross-entropy) of a softmax model over `dataset`,
    counted in numpy."""
    import numpy as np

    correct = total = 0
    loss = 0.0
    for batch in dataset:
        images, labels = batch[0], np.asarray(batch[1])
        # A padded last batch carries weights: 0 for the padding.
        real = np.asarray(batch[2]) > 0 if len(batch) > 2 else np.ones(len(labels), bool)
        probabilities = np.asarray(model(images, training=False), np.float64)[real]
        labels = labels[real]
        correct += int(np.sum(np.argmax(probabilities, -1) == labels))
        loss -= float(np.sum(np.log(np.maximum(
            probabilities[np.arange(len(labels)), labels], 1e-12))))
        total += len(labels)
    return correct / total, loss / total


def curve(workdir, population_batches):
    """The rows of checkpoint_curve.csv (also written there)."""
    import tensorflow as tf

    from bn_zoo import population
    from bn_zoo.models.preprocessing import preprocess_input
    from bn_zoo.training import config as config_lib
    from bn_zoo.training import checkpoints, inputs, modeling
    from bn_zoo.training import workdir as workdir_lib
    from bn_zoo.training.errors import WorkdirError

    wd = workdir_lib.Workdir(workdir)
    saved = wd.saved_config()
    if saved is None:
        raise WorkdirError(f"{wd.path} has no {workdir_lib.CONFIG_FILE}: not a trainer "
                           "workdir. Pass a directory given as --workdir to trainers.train.")
    paths = checkpoint_paths(wd.checkpoints)
    if not paths:
        raise WorkdirError(f"{wd.path} has no checkpoint; train first.")
    if population_batches < 1:
        raise WorkdirError("--population_batches must be at least 1.")
    config = config_lib.resolve(saved)
    config.synchronized_batch_norm = False
    model = modeling.create_model(config, classifier_activation="softmax")
    if not population.batch_normalization_layers(model):
        raise WorkdirError(f"{config.model.name} has no BN layer: there are no population "
                           "statistics to compare with.")
    data = inputs.create(config.data, lambda x: preprocess_input(
        x, mode=modeling.preprocessing_mode(config)))
    evaluation = data.eval_dataset_fn(config.eval_batch_size)(None)
    checkpoint = tf.train.Checkpoint(model=model)
    rows = []
    for step, path in paths:
        # As `restore_model`: the optimizer and step are not needed, but every
        # variable of the model must come from the checkpoint.
        try:
            checkpoints.restore(checkpoint, path, model, expect_partial=True)
        except (AssertionError, ValueError) as error:  # missing / other-shaped variables
            raise WorkdirError(
                f"{path} does not fit the {config.model.name} of "
                f"{workdir_lib.CONFIG_FILE}: its variables are missing or of other shapes "
                f"({str(error).splitlines()[0][:200]}). Was the workdir's config edited "
                "after training? Restore the config the run was trained with.") from None
        population.set_inference_statistics(model, "moving")
        accuracy_moving, loss_moving = _evaluate(model, evaluation)
        population.estimate(model, data.population_dataset(config.global_batch_size,
                                                            config.seed), population_batches)
        accuracy_population, loss_population = _evaluate(model, evaluation)
        rows.append({"step": step, "accuracy_moving": round(accuracy_moving, 6),
                     "accuracy_population": round(accuracy_population, 6),
                     "loss_moving": round(loss_moving, 6),
                     "loss_population": round(loss_population, 6)})
        print(f"step {step:>7}: accuracy {100 * accuracy_moving:6.2f}% with moving averages, "
              f"{100 * accuracy_population:6.2f}% with population statistics", flush=True)
    workdir_lib.write_csv(wd.file("checkpoint_curve.csv"), rows, list(rows[0]))
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    cli.run(lambda: curve(WORKDIR.value, POPULATION_BATCHES.value))
    print(f"Written: {os.path.join(os.path.abspath(WORKDIR.value), 'checkpoint_curve.csv')}",
          flush=True)


if __name__ == "__main__":
    app.run(main)
