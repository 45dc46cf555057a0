"""The watchdog process of `bn_zoo.training.cluster.deadline`.

While TensorFlow connects to a cluster it may hold the Python interpreter of
the trainer, so neither a thread nor a signal handler there can end a wait
that went on too long or was interrupted. This small process watches from
outside: it ends the trainer (SIGKILL) with a one-line message on stderr

- when the deadline passes, naming the addresses that do not answer; or
- when SIGTERM or SIGINT is pending for the trainer (the trainer blocks them
  during the connection, so they stay pending where /proc shows them);

and exits quietly when its stdin closes (the connection succeeded).

    python -S bn_zoo/training/watchdog.py PARENT_PID SECONDS LATE STOPPED \\
        [DESCRIPTION=HOST:PORT ...]

PARENT_PID is the process to watch, SECONDS the deadline (<= 0: none), LATE
the message at the deadline ("{detail}" is replaced by ": no answer from
..." or nothing), STOPPED the message on a signal ("SIGNAL" is replaced by
its name). `deadline` starts it by its file path with `python -S`, not with
`python -m bn_zoo.training.watchdog`: `-m` would first import the `bn_zoo`
package, and with it Keras and TensorFlow (seconds, hundreds of MB), before
the watchdog could watch. So this module imports the standard library only.
Linux only (it reads /proc).
"""

import os
import select
import signal
import socket
import sys
import time

_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}
POLL_SECONDS = 0.2


def silent_addresses(addresses):
    """": no answer from A at host:port, ..." for the `(description,
    "host:port")` pairs nothing accepts a TCP connection at, or ""."""
    silent = []
    for what, address in addresses:
        host, _, port = address.rpartition("/")[2].rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except (OSError, ValueError):
            silent.append(f"{what} at {address}" if what else address)
    return ": no answer from " + ", ".join(silent) if silent else ""


def pending_signal(pid):
    """"SIGTERM" or "SIGINT" if that signal is pending for process `pid`
    (blocked and delivered, per /proc/PID/status), else None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("SigPnd:", "ShdPnd:")):
                    bits = int(line.split()[1], 16)
                    for signum, name in _NAMES.items():
                        if bits >> (signum - 1) & 1:
                            return name
    except OSError:
        pass
    return None


def watch(parent, seconds, late, stopped, addresses, stdin=None):
    """Watches `parent` until `stdin` closes (returns False) or it ends it
    with the message on stderr (returns True). See the module docstring."""
    stdin = sys.stdin if stdin is None else stdin
    end = time.monotonic() + seconds if seconds > 0 else float("inf")
    while True:
        if select.select([stdin], [], [], POLL_SECONDS)[0]:
            return False
        name = pending_signal(parent)
        if name or time.monotonic() > end:
            text = (stopped.replace("SIGNAL", name) if name
                    else late.replace("{detail}", silent_addresses(addresses)))
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
            os.kill(parent, signal.SIGKILL)
            return True


def main(argv):
    parent, seconds, late, stopped = int(argv[1]), float(argv[2]), argv[3], argv[4]
    addresses = [tuple(item.partition("=")[::2]) for item in argv[5:]]
    watch(parent, seconds, late, stopped, addresses)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
