"""Stopping a run cleanly on SIGTERM or SIGINT (preemption, Ctrl-C).

Clouds preempt a VM by sending SIGTERM some seconds before they stop it;
Ctrl-C sends SIGINT. While a `Watcher` is active, either signal only sets a
flag; the training loop checks it at the next step boundary (every call of
its `tf.function`, at most `steps_per_loop` steps), saves a checkpoint there
and stops with `errors.Preempted`, which the entry points print as one line,
exiting with code 128 + the signal number. A second signal ends the process
at once, as it would without the watcher.

`tf.distribute.experimental.PreemptionCheckpointHandler` does the same for
`MultiWorkerMirroredStrategy` and TPUs, but counts its own calls instead of
the run's step, adds its own counter to every checkpoint, restores in its
constructor, exits the process itself and ignores SIGINT. Outside Google's
platforms it watches SIGTERM with a Python signal handler like this one. The
workers of a multi-worker run agree on the stop, and on the signal, with one
all-reduce per loop (`any_worker`): all save the checkpoint at the same step
(saving is collective) and stop.
"""

import signal
import threading

import tensorflow as tf

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Watcher:
    """A context manager: SIGTERM/SIGINT set `received` instead of ending
    the process (the main thread only; elsewhere it watches nothing)."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received is not None:  # A second signal: what it would do anyway.
            previous = self._previous.get(signum, signal.SIG_DFL)
            signal.signal(signum, previous)
            signal.raise_signal(signum)
            return
        # Only a flag: logging here could re-enter a stream the interrupted
        # code is writing ("reentrant call"); the loop says it at the boundary.
        self.received = signal.Signals(signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}
        return False


def any_worker(strategy, received):
    """The signal that stopped any worker of `strategy`, or None.

    Args:
        strategy: The run's `tf.distribute.Strategy`.
        received: This worker's `Watcher.received` (a signal of `SIGNALS`,
            or None).

    Returns:
        `received` itself outside multi-worker mode; there, after one
        all-reduce over the workers, SIGTERM if any worker received it, else
        SIGINT if any did, else None: a worker that received nothing learns
        which signal its peer got (for its message and exit code).
    """
    if not strategy.extended._in_multi_worker_mode():  # pylint: disable=protected-access
        return received
    # One count per signal: strategy.reduce has SUM and MEAN, not MAX.
    flags = tf.constant([1.0 if received == signum else 0.0 for signum in SIGNALS])
    per_replica = strategy.run(lambda: tf.identity(flags))
    counts = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()
    return next((signal.Signals(s) for s, n in zip(SIGNALS, counts) if n > 0), None)
