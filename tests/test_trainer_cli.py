"""The command line of `trainers/*.py`:

- `python -m trainers.train` on bad input: a misspelled config field next to
  the right one, an unknown model, negative steps, missing data each give one
  clear error and a non-zero exit code, and leave an existing workdir
  byte-for-byte unchanged. The misspelled field (refused while absl parses the
  flags) runs as a real subprocess; the refusals of training.train run in this
  process through `cli.run`, which prints them in the command's main.
- `--help` of every command: exit status 0, the command's description and
  flags before anything of absl's, answered before TensorFlow or Keras is
  imported (a real process whose import of either ends it with status 97).
- Ctrl-C during start-up: a real SIGINT sent to a real process while
  TensorFlow imports (or while the command's modules load) gives one line and
  exit status 130, without a traceback or TensorFlow's start-up lines.
- A flag error, a config file without get_config(), a config field misspelled
  next to the right one: one line `ERROR (Kind): ...` naming what was typed.
"""

import glob
import os
import re
import select
import signal
import subprocess
import sys

import pytest

import commands
from commands import ROOT
from file_tree import snapshot

CONFIG = commands.config_path("mnist", "mlp")
SHORT = ["--config.num_train_steps=20", "--config.steps_per_loop=10",
         "--config.eval_every_steps=10", "--config.checkpoint_every_steps=10",
         "--config.data.train_split=train[:600]", "--config.probe.num_examples=50",
         "--config.population_batches=0"]

BAD_INPUTS = {  # Refused by training.train: checked through cli.run, in process.
    "unknown_model": ({"model.name": "resnet50"},
                      "Unknown model config.model.name='resnet50'. Known models:"),
    "negative_steps": ({"num_train_steps": -100},
                       "num_train_steps must be a positive integer; got -100"),
    "missing_data": ({"data.data_dir": "{empty}"}, "MNIST data set is not prepared under"),
}


@pytest.fixture
def existing_run(tmp_path):
    """An unfinished run (its final.json removed, so a rerun would train)."""
    from bn_zoo import training
    from configs import mnist as mnist_configs

    config = mnist_configs.get_config("mlp")  # The same run as SHORT on the command line.
    config.num_train_steps = 20
    config.steps_per_loop = config.eval_every_steps = config.checkpoint_every_steps = 10
    config.data.train_split = "train[:600]"
    config.probe.num_examples = 50
    config.population_batches = 0
    workdir = str(tmp_path / "existing")
    training.train(config, workdir)
    os.remove(os.path.join(workdir, "final.json"))
    return workdir


def test_bad_inputs_fail_clearly_and_change_nothing(existing_run, tmp_path, monkeypatch,
                                                    capsys):
    from bn_zoo import training
    from bn_zoo.training import cli
    from configs import mnist as mnist_configs

    empty = tmp_path / "no_data"
    empty.mkdir()
    before = snapshot(existing_run)
    # The command line: a misspelled field next to the right one.
    unknown = commands.launch("trainers.train", [
        f"--config={CONFIG}", f"--workdir={existing_run}", *SHORT, "--config.num_train_step=300"])

    monkeypatch.setattr(sys, "argv", ["trainers/train.py"])  # No --verbosity.
    for case, (fields, message) in BAD_INPUTS.items():
        config = mnist_configs.get_config("mlp")  # As SHORT, then the bad field.
        config.num_train_steps = 20
        config.steps_per_loop = config.eval_every_steps = config.checkpoint_every_steps = 10
        config.data.train_split = "train[:600]"
        config.probe.num_examples = 50
        config.population_batches = 0
        for path, value in fields.items():
            *parents, last = path.split(".")
            target = config
            for parent in parents:
                target = target[parent]
            target[last] = value.format(empty=empty) if isinstance(value, str) else value
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            cli.run(lambda: training.train(config, existing_run))
        err = capsys.readouterr().err
        assert exited.value.code == 1, case
        assert message in err and err.startswith("ERROR ("), (case, err[-2000:])
        assert "Traceback" not in err, (case, err[-2000:])

    _, err = unknown.communicate(timeout=300)
    assert unknown.returncode == 1
    assert err == ("ERROR (ConfigError): Unknown config field --config.num_train_step (in "
                   "'--config.num_train_step=300'). Did you mean --config.num_train_steps? "
                   f"--config={CONFIG} --print_config lists the fields with their meaning.\n")
    assert snapshot(existing_run) == before
    assert os.listdir(empty) == []


def test_missing_data_in_a_new_workdir_creates_nothing(tmp_path):
    from bn_zoo import training
    from bn_zoo.data import DataNotFoundError
    from configs import mnist as mnist_configs

    config = mnist_configs.get_config("mlp")
    config.data.data_dir = str(tmp_path / "no_data")
    with pytest.raises(DataNotFoundError, match="--data_dir=DIR .*TFDS_DATA_DIR"):
        training.train(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("strategy,batch", [("default", 1), ("mirrored", 2)])
def test_a_batch_giving_bn_one_value_per_channel_is_refused_before_anything(
    tmp_path, strategy, batch
):
    # bn_mlp's BN layers see (batch, 100): one example per replica gives m' = 1.
    from bn_zoo import training
    from bn_zoo.training.errors import ConfigError
    from configs import mnist as mnist_configs

    config = mnist_configs.get_config("bn_mlp")
    config.strategy = strategy
    config.global_batch_size = batch
    with pytest.raises(ConfigError, match="m' = 1 value per channel.*at least"):
        training.train(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


# Runs `python -m <module> <args>` in a process whose meta path first sees
# every import: an import of TensorFlow or Keras ends it with status 97 (for
# --help), or, with PAUSE_ON set, the import of that module writes a line to
# fd READY and waits for a byte on fd GO (for the Ctrl-C tests).
HOOKED = """
import os, runpy, sys

class Hook:
    paused = False

    def find_spec(self, name, path=None, target=None):
        if os.environ.get("REFUSE") and name.partition(".")[0] in ("tensorflow", "keras"):
            os.write(2, f"imported {name}\\n".encode())
            os._exit(97)
        if name == os.environ.get("PAUSE_ON") and not Hook.paused:
            Hook.paused = True
            os.write(int(os.environ["READY"]), b"importing\\n")
            os.read(int(os.environ["GO"]), 1)
        return None

sys.meta_path.insert(0, Hook())
module = sys.argv[1]
sys.argv = [sys.argv[0], *sys.argv[2:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""
COMMANDS = sorted(os.path.basename(p)[:-3]
                  for p in glob.glob(os.path.join(ROOT, "trainers", "*.py"))
                  if re.search(r"^ +quiet\.run\(main", open(p, encoding="utf-8").read(), re.M))
# A flag of each command's own, which its --help must list.
OWN_FLAG = {"train": "--workdir", "export": "--export_dir", "evaluate": "--crops",
            "convert": "--source", "figure1": "--weights_dir", "figure3": "--workdirs",
            "ablation": "--config", "lr_sweep": "--config", "scale_invariance": "--config",
            "checkpoint_curve": "--population_batches"}


def _hooked(module, args, env, **kwargs):
    env = commands.environment(tf_log_level=None, **env)
    return subprocess.Popen([sys.executable, "-c", HOOKED, module, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_help_of_every_command_answers_before_tensorflow_is_imported():
    assert {"train", "export", "evaluate", "convert", "figure1"} <= set(COMMANDS), COMMANDS
    processes = {c: _hooked(f"trainers.{c}", ["--help"], {"REFUSE": "1"}) for c in COMMANDS}
    for command, process in processes.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0 and err == "", (command, process.returncode, err)
        with open(os.path.join(ROOT, "trainers", f"{command}.py"), encoding="utf-8") as f:
            first_line = f.read().split('"""')[1].strip().splitlines()[0]
        assert out.startswith(first_line), (command, out[:300])
        flags_at = out.index("\nFlags:\n")
        own = re.findall(r"^  --(?:\[no\])?(\w+)", out[flags_at:], re.M)
        assert own and OWN_FLAG.get(command, "--")[2:] in own + [""], (command, own)
        # bn_zoo's flags first; absl's are left to --helpfull.
        assert "logtostderr" not in out and "--verbosity=N" in out[flags_at:], command
        assert out.rstrip().endswith("--helpfull: every flag, absl's included."), command


def test_helpfull_lists_absl_flags_after_the_commands_own():
    process = _hooked("trainers.train", ["--helpfull"], {"REFUSE": "1"})
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0 and err == "", err
    order = [out.index(s) for s in ("--workdir", "--helpfull: every flag", "--[no]logtostderr")]
    assert order == sorted(order), order
    assert "multi_worker_mirrored" in out and "TFDS_DATA_DIR" in out


@pytest.mark.parametrize("pause_on", ["tensorflow", "bn_zoo.training.cli"])
def test_ctrl_c_while_the_command_starts_is_one_line_and_status_130(tmp_path, pause_on):
    """A real SIGINT, sent while TensorFlow imports (SIGINT is blocked then:
    it is taken when the import ends) or while the command's own modules load."""
    ready_read, ready_write = os.pipe()
    go_read, go_write = os.pipe()
    workdir = tmp_path / "run"
    process = _hooked("trainers.train", [f"--config={CONFIG}", f"--workdir={workdir}", *SHORT],
                      {"PAUSE_ON": pause_on, "READY": str(ready_write), "GO": str(go_read)},
                      pass_fds=(ready_write, go_read))
    os.close(ready_write)
    os.close(go_read)
    try:
        readable, _, _ = select.select([ready_read], [], [], 300)
        assert readable and os.read(ready_read, 100) == b"importing\n"
        process.send_signal(signal.SIGINT)
        try:
            os.write(go_write, b"g")
        except BrokenPipeError:  # Interrupted already.
            pass
        out, err = process.communicate(timeout=300)
    finally:
        os.close(ready_read)
        os.close(go_write)
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert out == "" and err == (
        "ERROR (KeyboardInterrupt): Interrupted (Ctrl-C) while the command was starting; "
        "nothing was run or written.\n")
    assert not workdir.exists()


def test_flag_errors_are_one_line_naming_the_flag(tmp_path):
    """A misspelled flag, a missing required flag, a config file without
    get_config():
    `ERROR (Kind): ...` and status 1 (absl's own is `FATAL Flags parsing
    error` and a usage hint)."""
    no_get_config = tmp_path / "no_get_config.py"
    no_get_config.write_text("x = 1\n")
    cases = {
        ("trainers.export", "--model=bn_mlp"): (
            r"ERROR \(IllegalFlagValueError\): --export_dir is required: Base directory "
            r"of the exported model; .* --help lists the flags\."),
        ("trainers.convert", "--sorce=slim"): (
            r"ERROR \(UnrecognizedFlagError\): Unknown command line flag 'sorce'\. Did you "
            r"mean: source \?\. --help lists the flags\."),
        ("trainers.train", f"--config={no_get_config}", "--workdir=x"): (
            rf"ERROR \(ConfigError\): The config file {re.escape(str(no_get_config))} has no "
            r"get_config\(\) function\. .*"),
    }
    processes = {case: commands.launch(case[0], case[1:], tf_log_level=None) for case in cases}
    for case, process in processes.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 1 and out == "", (case, err)
        assert re.fullmatch(cases[case] + "\n", err), (case, err)
    assert not os.path.exists(os.path.join(ROOT, "x"))


def test_a_misspelled_nested_field_names_what_was_typed_and_the_nearest_field():
    """In process: the message `cli.parse_flags` prints, from the config file
    itself (ml_collections names only the missing key, or the right flag)."""
    from bn_zoo.training import cli

    argv = ["train", f"--config={CONFIG}", "--config.optimizer.base_learning_rate=0.1",
            "--config.optimizer.base_learning_rat=0.2", "--config.optimizer.zzz=1"]
    message = cli._config_error_message(argv, KeyError("base_learning_rat"))
    assert message.startswith("Unknown config field --config.optimizer.base_learning_rat (in "
                              "'--config.optimizer.base_learning_rat=0.2'). Did you mean "
                              "--config.optimizer.base_learning_rate?")
    message = cli._config_error_message([*argv[:2], argv[-1]], KeyError("zzz"))
    fields = sorted(cli._load_config(CONFIG).optimizer)
    assert f"config.optimizer has the fields {', '.join(fields)}." in message
