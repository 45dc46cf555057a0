"""Freezing part of the network, for a whole run or its first steps.

`config.model.freeze`:

- "none": everything trains.
- "backbone": every layer but the head trains not: `trainable=False`, so
  its variables get no gradient and its BN layers normalize in inference
  mode with their moving averages, whatever `training` says (Keras 3's
  convention, which bn_zoo's BatchNormalization follows). The head is the
  model's last top-level layer with weights (the classifier).
- "batch_norm": every BN layer (bn_zoo's and Keras') frozen so; the rest
  trains.

`config.model.freeze_steps` = N unfreezes at step N: training steps 1..N run
frozen, N + 1 on unfrozen. The phase is a function of the global step alone
(`Schedule.frozen_at`), so a run resumed at any step freezes exactly as an
uninterrupted one. Flipping `trainable` changes what a traced training step
computes, so each phase has its own `tf.function` (`bn_zoo.training.steps`);
the optimizer is built once for every variable that trains at some step, and
each phase updates its own subset (the learning-rate schedule and the
optimizer's iteration count go on across the flip).

Freezing BN layers whose moving averages have not caught up (a barely
trained backbone still holds its initializers' mean 0 and variance 1) makes
inference-mode normalization wrong by orders of magnitude. Before a fresh
run freezes them, `estimate_before_freezing` estimates Algorithm 2's
statistics on training batches (`bn_zoo.population.estimate`, frozen layers
included) and makes them those layers' moving averages.
"""

import dataclasses

import keras
import numpy as np

from bn_zoo import population
from bn_zoo.layers import BatchNormalization
from bn_zoo.layers import keras_layout
from bn_zoo.layers import moving


def head_layer(model):
    """The model's head: its last top-level layer with weights."""
    for layer in reversed(model.layers):
        if layer.weights:
            return layer
    raise ValueError(f"Model {model.name!r} has no layer with weights.")


def is_batch_norm(layer):
    return isinstance(layer, (BatchNormalization, keras.layers.BatchNormalization))


def _flatten(model):
    return [layer for layer in model._flatten_layers(include_self=False)]


class Schedule:
    """Which layers are frozen at which steps.

    Args:
        model: The run's model (its `trainable` flags as built).
        freeze: "none", "backbone" or "batch_norm".
        freeze_steps: None (the whole run) or N (frozen for steps 1..N).
    """

    def __init__(self, model, freeze, freeze_steps=None):
        self.model = model
        self.freeze = freeze
        self.freeze_steps = freeze_steps
        self._layers = _flatten(model)
        # As built: restored when unfreezing (a layer frozen by its builder stays so).
        self._built_layers = [(layer, layer.trainable) for layer in self._layers]
        self._built_variables = [(v, v.trainable) for v in model.weights]
        if freeze == "backbone":
            head = head_layer(model)
            self.head = head
            self.frozen = [l for l in model.layers if l is not head and l.weights]
        elif freeze == "batch_norm":
            self.head = None
            self.frozen = [l for l in self._layers if is_batch_norm(l)]
        else:
            self.head = None
            self.frozen = []
        self.state = None  # None: as built; True/False after `apply`.

    @property
    def active(self):
        return bool(self.frozen)

    def frozen_at(self, step):
        """Whether training step `step` + 1 (the global step being `step`)
        runs frozen."""
        if not self.active:
            return False
        return self.freeze_steps is None or step < self.freeze_steps

    def boundary(self, step):
        """The step at which the phase after `step` ends (None: it never does)."""
        if self.active and self.freeze_steps is not None and step < self.freeze_steps:
            return self.freeze_steps
        return None

    def frozen_batch_norm_layers(self):
        """The BN layers that a frozen phase runs in inference mode."""
        found = []
        for layer in self.frozen:
            if is_batch_norm(layer):
                found.append(layer)
            else:
                found.extend(l for l in _flatten(layer) if is_batch_norm(l))
        return found

    def apply(self, frozen):
        """Sets the layers' `trainable` flags for a frozen or unfrozen phase."""
        if frozen == self.state:
            return
        for layer, trainable in self._built_layers:
            layer.trainable = trainable
        for variable, trainable in self._built_variables:
            variable.trainable = trainable
        if frozen:
            for layer in self.frozen:
                layer.trainable = False
        self.state = frozen

    def describe(self):
        """What a frozen phase freezes, for the run's output."""
        frozen_bn = self.frozen_batch_norm_layers()
        if self.freeze == "backbone":
            what = (f"the backbone (every layer but the head {self.head.name!r}; "
                    f"{len(frozen_bn)} BN layer(s) in inference mode)")
        else:
            what = f"{len(frozen_bn)} BN layer(s) (inference mode; the rest trains)"
        when = ("for the whole run" if self.freeze_steps is None
                else f"for steps 1-{self.freeze_steps}, then everything trains")
        return f"Freezing {what} {when}."


def initial_weight(layer):
    """How much the initializers still weigh in `layer`'s moving averages:
    momentum ** updates (0 for zero-debiased or never-counted layers with
    statistics set from elsewhere; 1 for a layer never updated whose
    averages are still its initial values)."""
    updates = float(np.asarray(layer.moving_statistics_updates))
    if updates < 1:
        initial = (np.all(np.asarray(layer.moving_mean) == 0)
                   and np.all(np.asarray(layer.moving_variance) == 1))
        return 1.0 if initial else 0.0
    if layer.zero_debias:
        return 0.0
    return float(layer.momentum) ** updates


def _percent(fraction):
    return "0%" if fraction == 0 else "<0.01%" if fraction < 1e-4 else f"{100 * fraction:.3g}%"


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What `estimate_before_freezing` did: `layers` (names) whose moving
    averages were set from `batches` batches (0: not estimated), the largest
    initial weight found, and why (a sentence for the run's output; a
    warning if stale layers were frozen as they are)."""

    layers: tuple
    batches: int
    worst: float
    message: str
    warning: bool = False


def estimate_before_freezing(model, layers, dataset, num_batches):
    """Sets the moving averages of those `layers` that have not caught up to
    Algorithm 2's statistics over `num_batches` batches of `dataset`.

    Args:
        model: The model (every BN layer runs in training mode for the
            estimate; no weight or moving average of another layer changes).
        layers: The BN layers about to be frozen.
        dataset: Training batches (images, labels), preprocessed as in training.
        num_batches: How many (0: do not estimate; the message says why).

    Returns:
        An `Estimate`.
    """
    ours = [l for l in layers if isinstance(l, BatchNormalization)]
    stale = [l for l in ours if initial_weight(l) > moving.INITIAL_WEIGHT_WARNING]
    worst = max((initial_weight(l) for l in ours), default=0.0)
    if not stale:
        return Estimate((), 0, worst, (
            f"The moving averages of the {len(ours)} BN layer(s) to freeze have caught up "
            f"(initial values weigh at most {_percent(worst)}): no estimate needed "
            "before freezing."))
    if not num_batches:
        return Estimate((), 0, worst, (
            f"{len(stale)} of the {len(ours)} BN layer(s) to freeze have moving "
            f"averages that have not caught up (initial values weigh up to "
            f"{_percent(worst)}), and config.model.freeze_estimate_batches=0, so they "
            "are frozen as they are; inference-mode normalization may be far off."),
            warning=True)
    # Layers that are not stale keep their moving averages; their population
    # statistics are estimated too and left unused (inference reads the
    # moving averages while training).
    population.estimate(model, dataset, num_batches, activate=False, include_frozen=True)
    for layer in stale:
        layer.moving_mean.assign(layer.population_mean)
        layer.moving_variance.assign(layer.population_variance)
        if layer.renorm:
            layer.renorm_mean.assign(layer.population_mean)
            layer.renorm_stddev.assign(
                keras.ops.sqrt(layer.population_variance + layer.epsilon))
        keras_layout.mark_caught_up(layer)
    return Estimate(tuple(l.name for l in stale), num_batches, worst, (
        f"{len(stale)} of the {len(ours)} BN layer(s) to freeze had moving averages that "
        f"had not caught up (initial values weighed up to {_percent(worst)}): estimated "
        f"Algorithm 2's statistics from {num_batches} training batches and made them "
        "their moving averages before freezing."))
