"""`--config` by name (`bn_zoo.training.config_files`), against the files of
the checkout's configs/ folder; by name from an installed wheel in
test_packaging.py."""

import os

import pytest

from bn_zoo.training import config_files
from commands import CONFIGS


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Outside the checkout: no configs/ here.
    return tmp_path


def test_names_are_the_config_files_of_the_checkout():
    expected = sorted(name[:-3] for name in os.listdir(CONFIGS)
                      if name.endswith(".py") and not name.startswith("_"))
    assert config_files.available() == expected
    assert CONFIGS in config_files.config_directories()


@pytest.mark.parametrize("spelling", ["figure1", "figure1.py", "configs/figure1.py"])
def test_a_name_becomes_the_path_of_its_file(elsewhere, spelling):
    path = os.path.join(CONFIGS, "figure1.py")
    assert config_files.resolve(spelling) == path
    assert config_files.resolve(spelling + ":variant") == path + ":variant"


def test_existing_paths_and_unknown_names_are_left_alone(elsewhere):
    own = elsewhere / "figure1.py"  # A file of the user's: it wins over the name.
    own.write_text("def get_config():\n    return None\n")
    assert config_files.resolve("figure1.py") == "figure1.py"
    for value in ("no_such_config", "other/figure1.py", "__init__", "", ":mlp"):
        assert config_files.resolve(value) == value, value


def test_command_lines_get_the_path_in_both_flag_spellings(elsewhere):
    path = os.path.join(CONFIGS, "mnist.py")
    argv = ["prog", "--config=mnist:bn_mlp", "--config.seed=3", "--workdir=w"]
    assert config_files.with_config_path(argv) == [
        "prog", f"--config={path}:bn_mlp", "--config.seed=3", "--workdir=w"]
    assert config_files.with_config_path(["prog", "--config", "mnist", "--", "--config=x"]) == [
        "prog", "--config", path, "--", "--config=x"]
