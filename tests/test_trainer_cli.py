"""`python -m trainers.train` on bad input (issue 4): an unknown config field,
an unknown model, negative steps, missing data each give one clear error and
a non-zero exit code, and leave an existing workdir byte-for-byte unchanged.
The commands run as real subprocesses, in parallel."""

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

BAD_INPUTS = {
    "unknown_field": (["--config.optimizer.learnin_rate=0.1"], "learnin_rate"),
    "unknown_model": (["--config.model.name=resnet50"], "Unknown model config.model.name='resnet50'. Known models:"),
    "negative_steps": (["--config.num_train_steps=-100"],
                       "num_train_steps must be a positive integer; got -100"),
    "missing_data": (["--data_dir={empty}"], "MNIST data set is not prepared under"),
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


def test_bad_inputs_fail_clearly_and_change_nothing(existing_run, tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    before = snapshot(existing_run)
    processes = {}
    for case, (args, _) in BAD_INPUTS.items():
        args = [a.format(empty=empty) for a in args]
        processes[case] = launch([f"--config={CONFIG}", f"--workdir={existing_run}", *SHORT, *args])
    helpfull = launch(["--helpfull"])
    for case, process in processes.items():
        _, err = process.communicate(timeout=300)
        assert process.returncode != 0, case
        assert BAD_INPUTS[case][1] in err, (case, err[-2000:])
        assert "Traceback" not in err, (case, err[-2000:])
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
