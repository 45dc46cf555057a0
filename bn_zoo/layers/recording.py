"""Recording the mini-batch statistics of training calls (for Algorithm 2).

Algorithm 2 replaces the moving averages with population statistics taken
over many training mini-batches: E[x] is the mean of their μ_B, Var[x] the
mean of their m'/(m'−1)·σ²_B. `bn_zoo.population.estimate` runs the training
network on those mini-batches inside `record_batch_statistics()`, which
collects each layer's μ_B, σ²_B and m' in place of the moving-average update.
The recording is per thread.
"""

import contextlib
import threading

_state = threading.local()


@contextlib.contextmanager
def record_batch_statistics():
    """Collects the mini-batch statistics of every training-mode call.

    Inside this context a `BatchNormalization` layer called in training mode
    normalizes with its mini-batch statistics as usual, but does not update
    its moving averages; instead it appends `(layer, mean, variance, count)`
    to the yielded list, where `variance` is the biased σ²_B and `count` is
    m' (a float32 scalar). `bn_zoo.population.estimate` builds Algorithm 2's
    population statistics on this.
    """
    previous = getattr(_state, "records", None)
    _state.records = []
    try:
        yield _state.records
    finally:
        _state.records = previous


def active_records():
    """The list a training call appends to, or None outside the context."""
    return getattr(_state, "records", None)
