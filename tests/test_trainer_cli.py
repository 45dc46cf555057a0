"""`python -m trainers.train` on bad input (issue 4): an unknown config field,
an unknown model, negative steps, missing data each give one clear error and
a non-zero exit code, and leave an existing workdir byte-for-byte unchanged.
The unknown field (refused while absl parses the flags) and `--helpfull` run as
real subprocesses; the refusals of training.train run in this process through
`cli.run`, which prints them in the command's main."""

import os
import subprocess
import sys

import pytest

from file_tree import snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "mnist_mlp.py")
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


def launch(args, env=None):
    env = dict(env or os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-m", "trainers.train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def existing_run(tmp_path):
    """An unfinished run (its final.json removed, so a rerun would train)."""
    from bn_zoo import training
    from configs import mnist_mlp

    config = mnist_mlp.get_config()  # The same run as SHORT on the command line.
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
    from configs import mnist_mlp

    empty = tmp_path / "no_data"
    empty.mkdir()
    before = snapshot(existing_run)
    # The command line: a field the config does not have, and the help.
    unknown = launch([f"--config={CONFIG}", f"--workdir={existing_run}", *SHORT,
                      "--config.optimizer.learnin_rate=0.1"])
    helpfull = launch(["--helpfull"])

    monkeypatch.setattr(sys, "argv", ["trainers/train.py"])  # No --verbosity.
    for case, (fields, message) in BAD_INPUTS.items():
        config = mnist_mlp.get_config()  # As SHORT, then the bad field.
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
    assert unknown.returncode != 0
    assert "ERROR (ConfigError): Unknown config field" in err and "learnin_rate" in err
    assert "Traceback" not in err, err[-2000:]
    assert snapshot(existing_run) == before
    assert os.listdir(empty) == []

    out, err = helpfull.communicate(timeout=300)
    for flag in ("--config", "--workdir", "--strategy", "--tpu", "--data_dir"):
        assert flag in out + err, flag
    assert "multi_worker_mirrored" in out + err and "TFDS_DATA_DIR" in out + err


def test_missing_data_in_a_new_workdir_creates_nothing(tmp_path):
    from bn_zoo import training
    from bn_zoo.data import DataNotFoundError
    from configs import mnist_mlp

    config = mnist_mlp.get_config()
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
    from configs import mnist_bn_mlp

    config = mnist_bn_mlp.get_config()
    config.strategy = strategy
    config.global_batch_size = batch
    with pytest.raises(ConfigError, match="m' = 1 value per channel.*at least"):
        training.train(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")
