"""A multi-worker cluster of local processes: free ports on 127.0.0.1 and
each worker's `TF_CONFIG` (the variable `MultiWorkerMirroredStrategy`'s
cluster resolver reads)."""

import json
import os
import socket


def free_ports(count):
    """`count` distinct ports on 127.0.0.1 that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def worker_environments(count, **extra):
    """The environments of `count` workers of one fresh local cluster:
    `os.environ` plus `extra` plus `TF_CONFIG` naming worker `index`."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(count)]}
    return [dict(os.environ, **extra, TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        for index in range(count)]
