"""The trained model of a run directory, for inference, evaluation and export.

    run = runs.restore("workdirs/bn_mlp")    # model, checkpoint, step, config
    model = runs.restore_model("workdirs/bn_mlp")

The model is built from `config.json` (its `model.name` and `model.kwargs`;
float32, one device: inference needs no cross-replica statistics), loaded
from the newest readable checkpoint (`restore_newest_readable`) and, if the
run finished with Algorithm 2's population statistics at that checkpoint's
step (`final.json`), switched to them: those the trainer kept in
`population/ckpt-<step>`, apart from the training checkpoints.
"""

import dataclasses
import os

import tensorflow as tf

from bn_zoo import models, population
from bn_zoo.runs import checkpoints, run_dir


@dataclasses.dataclass(frozen=True)
class Restored:
    """A run's trained model and where it came from.

    Attributes:
        model: The `keras.Model`, weights and BN statistics restored.
        checkpoint: Path of the checkpoint restored (`.../ckpt-<step>`).
        step: Its training step.
        config: The run's config.json, a dict.
        inference_statistics: "population" if the model was switched to
            Algorithm 2's population statistics, else "moving" (None for a
            model without BN).
    """

    model: object
    checkpoint: str
    step: int
    config: dict
    inference_statistics: str


def build_model(config, classifier_activation="softmax"):
    """The model of a run's config (a dict shaped like config.json), with
    random weights: `bn_zoo.create_model(config.model.name, **model.kwargs)`
    seeded as the trainer seeds it, without synchronized BN.

    Raises:
        WorkdirError: the config names no model, or one that cannot be built
            (e.g. a network of your own whose module is not importable).
    """
    model_config = config.get("model") or {}
    name = model_config.get("name")
    if not isinstance(name, str):
        raise run_dir.WorkdirError("The run's config.json names no model (no model.name).")
    kwargs = dict(model_config.get("kwargs") or {})
    kwargs.setdefault("seed", config.get("seed", 0))
    try:
        return models.create_model(name, weights=None,
                                   classifier_activation=classifier_activation, **kwargs)
    except (ImportError, TypeError, ValueError) as error:
        raise run_dir.WorkdirError(
            f"The run's config.json names model {name!r}, which cannot be built: "
            f"{error}") from error


def restore(path, classifier_activation="softmax"):
    """The trained model of a run directory and the checkpoint it came from.

    Args:
        path: The run directory (`--workdir` of `trainers.train`).
        classifier_activation: Activation of the classifier; the default
            "softmax" returns probabilities like keras.applications, None
            the logits the trainer trained on.

    Returns:
        A `Restored`.

    Raises:
        WorkdirError: no config.json, no checkpoint, or no readable one.
    """
    run = run_dir.RunDir(path)
    config = run_dir.read_config(run.path)
    if tf.train.latest_checkpoint(run.checkpoints) is None:
        raise run_dir.WorkdirError(f"{run.path} has no checkpoint yet; train first.")
    model = build_model(config, classifier_activation)
    checkpoint = checkpoints.restore_newest_readable(
        tf.train.Checkpoint(model=model), run.checkpoints, model, expect_partial=True)
    step = checkpoints.step_of(checkpoint)
    final = run.read_final() or {}
    statistics = "moving" if population.batch_normalization_layers(model) else None
    if final.get("step") == step and final.get("inference_statistics") == "population":
        # The trainer keeps them apart from the training checkpoints (a run
        # finished by an older bn_zoo wrote them into its last checkpoint).
        kept = os.path.join(run.population, f"ckpt-{step}")
        if os.path.exists(kept + ".index"):
            checkpoints.restore(tf.train.Checkpoint(model=model), kept, model,
                                expect_partial=True)
        population.set_inference_statistics(model, "population")
        statistics = "population"
    return Restored(model, checkpoint, step, config, statistics)


def restore_model(path, classifier_activation="softmax"):
    """The trained model of a run directory, ready for inference or export
    (`restore(...).model`; see `restore`)."""
    return restore(path, classifier_activation).model


def save_weights(path, weights_path):
    """Writes the trained weights of a run directory (`restore_model`) to a
    Keras `*.weights.h5` file, atomically; returns the file's sha256.

    Raises:
        ValueError: `weights_path` does not end in ".weights.h5".
        WorkdirError: see `restore`.
    """
    from bn_zoo.models import weights_files

    weights_path = os.path.abspath(os.fspath(weights_path))
    if not weights_path.endswith(".weights.h5"):
        raise ValueError(f"The weights file must end in '.weights.h5'; got {weights_path!r}.")
    weights_files.save_weights_atomically(restore_model(path), weights_path)
    return weights_files.sha256_of(weights_path)
