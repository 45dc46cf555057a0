"""Every checkpoint of a run evaluated twice: with the BN moving averages and
with Algorithm 2's population statistics (Section 3.1).

The trainer evaluates with the moving averages (momentum 0.99 by default),
which trail the weights by roughly 1/(1 − momentum) steps: when the weights
move fast, an evaluation can fall far below what the same weights give with
statistics of their own. `curve(workdir, population_batches)` restores every
`ckpt-<step>` of workdir/checkpoints, evaluates on the run's evaluation split
with the moving averages, then estimates the population statistics from
`population_batches` training batches (the run's global batch) and evaluates
again. It writes workdir/checkpoint_curve.csv (step, accuracy_moving,
accuracy_population, loss_moving, loss_population). TensorFlow only; the
run's config.json picks model and data.
"""

import os

CSV_FILE = "checkpoint_curve.csv"


def evaluate(model, dataset):
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


def format_row(row):
    """One row as the progress line the command prints."""
    return (f"step {row['step']:>7}: accuracy {100 * row['accuracy_moving']:6.2f}% with "
            f"moving averages, {100 * row['accuracy_population']:6.2f}% with population "
            "statistics")


def curve(workdir, population_batches, progress=None):
    """The rows of checkpoint_curve.csv (also written there).

    Args:
        workdir: a trainer run directory with config.json and checkpoints.
        population_batches: training batches Algorithm 2 averages over.
        progress: called with each row as it is computed (unrounded), or None.

    Raises:
        WorkdirError: not a run, no checkpoint, population_batches < 1, a
            model without BN, or checkpoints that do not fit config.json.
    """
    import tensorflow as tf

    from bn_zoo import population, runs
    from bn_zoo.models.preprocessing import preprocess_input
    from bn_zoo.training import config as config_lib
    from bn_zoo.training import inputs, modeling

    run = runs.RunDir(workdir)
    saved = runs.read_config(run.path)
    paths = runs.checkpoint_paths(run.checkpoints)
    if not paths:
        raise runs.WorkdirError(f"{run.path} has no checkpoint; train first.")
    if population_batches < 1:
        raise runs.WorkdirError("--population_batches must be at least 1.")
    model = runs.build_model(saved)
    config = config_lib.resolve(saved)  # The data pipeline's and the batches' fields.
    if not population.batch_normalization_layers(model):
        raise runs.WorkdirError(f"{config.model.name} has no BN layer: there are no "
                                "population statistics to compare with.")
    data = inputs.create(config.data, lambda x: preprocess_input(
        x, mode=modeling.preprocessing_mode(config)))
    evaluation = data.eval_dataset_fn(config.eval_batch_size)(None)
    checkpoint = tf.train.Checkpoint(model=model)
    rows = []
    for step, path in paths:
        # As `runs.restore`: the optimizer and step are not needed, but every
        # variable of the model must come from the checkpoint.
        try:
            runs.restore_checkpoint(checkpoint, path, model, expect_partial=True)
        except (AssertionError, ValueError) as error:  # missing / other-shaped variables
            raise runs.WorkdirError(
                f"{path} does not fit the {config.model.name} of {runs.CONFIG_FILE}: its "
                f"variables are missing or of other shapes "
                f"({str(error).splitlines()[0][:200]}). Was the workdir's config edited "
                "after training? Restore the config the run was trained with.") from None
        population.set_inference_statistics(model, "moving")
        accuracy_moving, loss_moving = evaluate(model, evaluation)
        population.estimate(model, data.population_dataset(config.global_batch_size,
                                                            config.seed), population_batches)
        accuracy_population, loss_population = evaluate(model, evaluation)
        row = {"step": step, "accuracy_moving": accuracy_moving,
               "accuracy_population": accuracy_population, "loss_moving": loss_moving,
               "loss_population": loss_population}
        if progress is not None:
            progress(row)
        rows.append({key: value if key == "step" else round(value, 6)
                     for key, value in row.items()})
    runs.write_csv(run.file(CSV_FILE), rows, list(rows[0]))
    return rows
