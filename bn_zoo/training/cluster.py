"""Connecting to a cluster: checking `TF_CONFIG`, and a deadline.

`MultiWorkerMirroredStrategy` waits for every worker of `TF_CONFIG`, and a
TPU connection for the TPU, without a deadline; meanwhile TensorFlow may
hold the Python interpreter and replace the SIGTERM handler with one that
only logs `SIGTERM caught`. `deadline` bounds that wait (`--cluster_timeout`)
and lets SIGTERM and SIGINT end it; `tf_config_peers` refuses a malformed
`TF_CONFIG` before anything connects. Once connected, a worker that dies
(SIGKILL, a crash) makes TensorFlow abort the others' collective ops within
seconds (its coordination service watches heartbeats); `lost_workers` turns
that error into one that names the worker.
"""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from urllib.parse import urlparse

import tensorflow as tf

from bn_zoo.training import watchdog
from bn_zoo.training.choices import DEFAULT_CONNECT_TIMEOUT  # noqa: F401 - re-exported
from bn_zoo.training.errors import ClusterError, ConfigError



_TPU_HELP = ("Name one with --tpu: a Cloud TPU's name or its address "
             "(--tpu=grpc://HOST:8470); on a TPU VM, --tpu=local.")


def tpu_resolver(tpu):
    """TPUClusterResolver of `tpu` ('' or None: this machine's TPU, on a TPU VM)."""
    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
    except (ValueError, RuntimeError, OSError) as error:
        if not tpu:
            raise ConfigError(f"--strategy=tpu needs a TPU: none was named and this "
                              f"machine is not a TPU VM ({error}). {_TPU_HELP}") from error
        raise ClusterError(f"Cannot find the TPU {tpu!r}: {error} {_TPU_HELP}") from error


def tf_config_peers():
    """The addresses of the other tasks in `TF_CONFIG`, after checking it.

    Returns:
        `[(description, "host:port")]` of every task but this one; empty
        without `TF_CONFIG` (MultiWorkerMirroredStrategy then runs alone).

    Raises:
        ConfigError: `TF_CONFIG` is not JSON, lacks "cluster" or "task", or
            names a task that its cluster does not have.
    """
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return []
    example = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"The environment variable TF_CONFIG is not valid JSON "
                          f"({error}): {text[:200]!r}. Set it to the cluster and this "
                          f"task, {example}.") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    if (not isinstance(cluster, dict) or not isinstance(task, dict)
            or not all(isinstance(v, list) for v in cluster.values())):
        raise ConfigError(f"The environment variable TF_CONFIG needs a \"cluster\" (job "
                          f"name -> list of addresses) and a \"task\"; got {text[:200]!r}, "
                          f"{example}.")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise ConfigError(f"TF_CONFIG's task type {task_type!r} is not a job of its "
                          f"cluster ({', '.join(sorted(cluster))}). Set \"task\" to one of "
                          "them.")
    if not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise ConfigError(
            f"TF_CONFIG's task index {index!r} is out of range: its cluster has "
            f"{len(cluster[task_type])} {task_type} task(s), indices 0 to "
            f"{len(cluster[task_type]) - 1}. Give each process its own index.")
    return [(f"{job} {i}", address) for job, addresses in sorted(cluster.items())
            for i, address in enumerate(addresses) if (job, i) != (task_type, index)]


def answers(address, timeout=1.0):
    """Whether something accepts TCP connections at "host:port" (or
    grpc://host:port)."""
    parsed = urlparse(address if "://" in address else "tcp://" + address)
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout):
            return True
    except (OSError, ValueError, TypeError):
        return False


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

class deadline:
    """A context manager for a connection to a cluster that TensorFlow waits
    for without a deadline, and during which it holds the GIL and replaces
    the SIGTERM handler with one that only logs `SIGTERM caught`.

    Past `seconds` the process prints one ERROR line naming the addresses that
    do not answer and exits with code 1 (a thread does it when TensorFlow
    lets Python run, else a small watchdog process, `bn_zoo.training.watchdog`,
    does it a few seconds later, killing this one). SIGTERM and SIGINT are
    held back during the block; the watchdog process sees them pending and
    ends this process with a one-line message. Afterwards the SIGTERM handler is Python's again.

    Args:
        seconds: The deadline (0 or None: none; signals still end the process).
        what: What is being connected to, for the messages.
        addresses: `["host:port"]` or `[(description, "host:port")]`.
    """

    def __init__(self, seconds, what, addresses=()):
        self.seconds, self.what = seconds or 0, what
        self.addresses = [a if isinstance(a, tuple) else (None, a) for a in addresses]
        self._done = threading.Event()
        self._watchdog = None

    def _late_message(self, detail="{detail}"):
        return (f"ERROR (ClusterError): Could not connect to {self.what} within "
                f"{self.seconds:g} s{detail}. Start it (every task of the cluster) or fix "
                "its address, or wait longer with --cluster_timeout=SECONDS. Nothing was "
                "written.")

    def _silent(self):
        silent = [(d, a) for d, a in self.addresses if not answers(a)]
        named = ", ".join(f"{d} at {a}" if d else a for d, a in silent)
        return f": no answer from {named}" if named else ""

    def _watch(self):
        if self._done.wait(self.seconds):
            return
        message = self._late_message(self._silent())
        if not self._done.is_set():
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
            os._exit(1)

    def __enter__(self):
        main = threading.current_thread() is threading.main_thread()
        if main:
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        if self.seconds > 0:
            threading.Thread(target=self._watch, name="cluster-deadline", daemon=True).start()
        if main and os.path.exists(f"/proc/{os.getpid()}/status"):
            grace = self.seconds + 5 if self.seconds > 0 else 0
            # By file, with -S: `-m` would import bn_zoo (Keras, TensorFlow)
            # first (bn_zoo/training/watchdog.py says more).
            self._watchdog = subprocess.Popen(
                [sys.executable, "-S", watchdog.__file__, str(os.getpid()), str(grace),
                 self._late_message(),
                 f"Stopped by SIGNAL while connecting to {self.what}; nothing was written.",
                 *(f"{d or ''}={a}" for d, a in self.addresses)],
                stdin=subprocess.PIPE, close_fds=True)
        return self

    def __exit__(self, *exc):
        self._done.set()
        if self._watchdog is not None:
            self._watchdog.stdin.close()
            self._watchdog.wait()
        if threading.current_thread() is threading.main_thread():
            # TensorFlow installed its own SIGTERM handler: Python's is back.
            signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGTERM))
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        return False


# A task in TensorFlow's messages: /job:worker/replica:0/task:1.
_TASK_NAME = re.compile(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)")
# What TensorFlow's UnavailableError says when a peer stopped answering
# (its heartbeats, or the coordination service it ran), as opposed to, e.g.,
# an unavailable file system.
_LOST_PEER = ("Collective ops is aborted", "coordination service", "heartbeat")


def lost_worker_error(error):
    """A ClusterError naming the `TF_CONFIG` worker(s) that `error` (a
    `tf.errors.UnavailableError` that aborted this worker's collective ops)
    says stopped answering; None if `error` is not that."""
    text = getattr(error, "message", None) or str(error)
    if not isinstance(error, tf.errors.UnavailableError) or not any(
            marker in text for marker in _LOST_PEER):
        return None
    try:
        peers = dict(tf_config_peers())
    except ConfigError:
        return None
    if not peers:
        return None
    named = []
    for job, index in _TASK_NAME.findall(text):
        description = f"{job} {int(index)}"
        if description in peers and description not in named:  # Not this task.
            named.append(description)
    lost = (", ".join(f"{d} of TF_CONFIG at {peers[d]}" for d in named)
            or "another worker of TF_CONFIG")
    return ClusterError(
        f"Lost contact with {lost}: it stopped answering (killed, crashed or "
        "unreachable), so this worker stopped too. Restart every "
        "worker with the same command to resume from the newest checkpoint.")


@contextlib.contextmanager
def lost_workers():
    """Raises `lost_worker_error`'s ClusterError in place of TensorFlow's
    error for a peer that stopped answering (other errors pass unchanged)."""
    try:
        yield
    except tf.errors.UnavailableError as error:
        lost = lost_worker_error(error)
        if lost is None:
            raise
        raise lost from error
