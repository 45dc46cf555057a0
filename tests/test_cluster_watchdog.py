"""The watchdog process of `bn_zoo.training.cluster.deadline`, run as
`deadline` runs it (`python -S <its file>`, no site-packages: it imports the
standard library only) against real processes, sockets and signals: it kills
its parent with one message at the deadline (naming the addresses that do not
answer) or when SIGTERM is pending for it, and leaves it alone once its stdin
closes. The trainer-level behaviour is in test_trainer_failures.py."""

import signal
import socket
import subprocess
import sys

import pytest

from bn_zoo.training import watchdog

# A parent that blocks SIGTERM and SIGINT, as `deadline` does while
# TensorFlow connects, then waits.
PARENT = ("import signal, sys, time; "
          "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT}); "
          "print('ready', flush=True); time.sleep(120)")


@pytest.fixture
def parent():
    process = subprocess.Popen([sys.executable, "-S", "-c", PARENT], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "ready"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def start_watchdog(pid, seconds, addresses=()):
    return subprocess.Popen(
        [sys.executable, "-S", watchdog.__file__, str(pid), str(seconds),
         "ERROR late{detail}", "stopped by SIGNAL", *addresses],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(dog):
    """Waits for the watchdog with its stdin still open (as `deadline`
    keeps it while connecting); returns its stderr."""
    dog.wait(timeout=60)
    err = dog.stderr.read()
    dog.stdin.close()
    return err


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deadline_kills_the_parent_naming_silent_addresses(parent):
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        answering = f"127.0.0.1:{listening.getsockname()[1]}"
        silent = f"127.0.0.1:{closed_port()}"
        dog = start_watchdog(parent.pid, 0.5, [f"worker 0={answering}", f"worker 1={silent}"])
        err = finish(dog)
    assert dog.returncode == 0, err
    assert parent.wait(timeout=30) == -signal.SIGKILL
    assert err == f"ERROR late: no answer from worker 1 at {silent}\n"


def test_pending_sigterm_ends_the_parent_before_the_deadline(parent):
    dog = start_watchdog(parent.pid, 0)  # No deadline: only a signal ends it.
    parent.send_signal(signal.SIGTERM)  # Blocked: it stays pending.
    err = finish(dog)
    assert err == "stopped by SIGTERM\n"
    assert parent.wait(timeout=30) == -signal.SIGKILL


def test_closing_stdin_leaves_the_parent_running(parent):
    dog = start_watchdog(parent.pid, 600)
    _, err = dog.communicate(input="", timeout=60)  # Closes stdin: connected.
    assert dog.returncode == 0 and err == ""
    assert parent.poll() is None
