"""SIGTERM where the trainer cannot save first is one line too.

Inside the training loop SIGTERM saves a checkpoint and stops
(tests/test_trainer_failures.py, tests/test_multiworker_preemption.py), and
while a worker connects to its cluster a watchdog ends it
(tests/test_cluster_watchdog.py). Elsewhere (loading the data, building the
model, exporting, evaluating) a command used to die at once without a word.
Now every command reports `ERROR (Terminated): Stopped by SIGTERM without
saving...` with exit status 143, and a run that had saved no checkpoint
leaves nothing behind: checked here with a real signal to a real trainer
while it loads a data source that takes a minute (tests/user_source.py),
and to `console.report_errors` (which every command's main goes through).
"""

import os
import signal
import textwrap

import commands
import user_source

MESSAGE = ("ERROR (Terminated): Stopped by SIGTERM without saving: before training started, "
           "after it ended, or a second SIGTERM. Rerun the same command to resume from the "
           "newest checkpoint, if any.")


def _child_env():
    path = os.pathsep.join(p for p in (commands.TESTS, os.environ.get("PYTHONPATH")) if p)
    return commands.environment(PYTHONPATH=path)


def test_sigterm_while_the_data_loads_is_one_line_and_leaves_no_workdir(tmp_path):
    config = tmp_path / "slow_data.py"
    config.write_text(textwrap.dedent("""\
        import tiny_convnet
        from bn_zoo.training import inputs


        def get_config():
            data = inputs.default_config("user_source:Squares")
            data.name = "user_source:SlowSquares"
            config = tiny_convnet.sgd_config(data, classes=2, input_shape=(8, 8, 1))
            config.global_batch_size = config.eval_batch_size = 4
            config.num_train_steps = 2
            return config
        """))
    workdir = tmp_path / "run"
    process = commands.launch("trainers.train", [f"--config={config}", f"--workdir={workdir}"],
                              env=_child_env())
    lines = []
    for line in process.stderr:
        lines.append(line)
        if user_source.SlowSquares.LOADING in line:
            process.send_signal(signal.SIGTERM)
            break
    err = "".join(lines) + process.communicate(timeout=120)[1]
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert err.rstrip().splitlines()[-1] == MESSAGE, err[-3000:]
    assert not workdir.exists(), sorted(os.listdir(workdir))


def test_report_errors_turns_sigterm_into_one_line_and_restores_the_handler(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(textwrap.dedent("""\
        import os, signal, sys, time
        from bn_zoo.training import console

        before = signal.getsignal(signal.SIGTERM)
        assert console.report_errors(lambda: 7) == 7
        assert signal.getsignal(signal.SIGTERM) is before, "handler not restored"

        def wait():
            print("ready", flush=True)  # Inside: the handler is in place.
            time.sleep(60)

        console.report_errors(wait)
        print("not reached", flush=True)
        """))
    process = commands.launch("sleeper", cwd=tmp_path)  # tmp_path/sleeper.py
    assert process.stdout.readline().strip() == "ready", process.communicate(timeout=60)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "not reached" not in out
    assert "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == MESSAGE, err[-3000:]
