"""The repository root and one way to start bn_zoo's commands in a subprocess.

Every test that runs `python -m trainers.X` (or any other module) as a user
would goes through `launch` (a running process: signals, timing, logs) or
`run` (to the end: exit code, stdout, stderr), from the repository root, so
`trainers` and `configs` import from the checkout.

    result = commands.run("trainers.export", ["--workdir=...", "--format=onnx"])
    assert result.returncode == 0, result.stderr

`tf_log_level` sets `TF_CPP_MIN_LOG_LEVEL` for the child: "3" (the
default) hides TensorFlow's C++ lines, "2" keeps their errors; None removes
the variable, as a user's shell would not set it; `INHERIT` leaves it as the
given environment has it (tests/conftest.py sets "2" unless it is set).
"""

import os
import subprocess
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))  # On a child's PYTHONPATH for test helpers.
ROOT = os.path.dirname(TESTS)
CONFIGS = os.path.join(ROOT, "configs")
INHERIT = "inherit"  # tf_log_level: the parent's TF_CPP_MIN_LOG_LEVEL, if any.


def config_path(name, variant=None):
    """`configs/<name>.py[:variant]` as an absolute `--config` value."""
    path = os.path.join(CONFIGS, f"{name}.py")
    return f"{path}:{variant}" if variant else path


def environment(env=None, tf_log_level="3", **extra):
    """A child environment: `env` (default this process's), TensorFlow's C++
    log level (`tf_log_level`; None: removed, as in a user's shell; `INHERIT`:
    as in `env`), and `extra` variables (a None value removes one)."""
    env = dict(os.environ if env is None else env)
    if tf_log_level == INHERIT:
        pass
    elif tf_log_level is None:
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    else:
        env["TF_CPP_MIN_LOG_LEVEL"] = str(tf_log_level)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def command(module, args=()):
    """The argv of `python -m module args...` with this interpreter."""
    return [sys.executable, "-m", module, *map(str, args)]


def launch(module, args=(), env=None, cwd=ROOT, log=None, tf_log_level="3", **popen):
    """Starts `python -m module args...` and returns the `Popen`.

    Output goes to pipes (text) unless `log` is an open file, which then
    receives stdout and stderr together.
    """
    if log is not None:
        popen.setdefault("stdout", log)
        popen.setdefault("stderr", subprocess.STDOUT)
    else:
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
        popen.setdefault("text", True)
    return subprocess.Popen(command(module, args), cwd=cwd,
                            env=environment(env, tf_log_level), **popen)


def run(module, args=(), env=None, cwd=ROOT, timeout=600, tf_log_level="3", **kwargs):
    """Runs `python -m module args...` to the end; a `CompletedProcess` with
    text stdout and stderr."""
    return subprocess.run(command(module, args), cwd=cwd, env=environment(env, tf_log_level),
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def error_line(stderr):
    """The `ERROR (Kind): ...` line of a refused command's stderr.

    AssertionError unless there is exactly one such line, it is the last
    line, and there is no traceback: a refusal says one thing, at the end.
    """
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("ERROR (")]
    assert len(lines) == 1 and stderr.rstrip().endswith(lines[0]), (
        f"not one 'ERROR (Kind): ...' line, last, in:\n{stderr[-3000:]}")
    return lines[0]
