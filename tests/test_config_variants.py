"""Config variants (`--config=configs/<file>.py:<variant>`) against the paper's
numbers, the config files they replaced refused with the new spelling, and the
deprecated homes of the paper's tables and plots.

The expected values are the paper's: BN-x5 trains at 5x and BN-x30 at 30x
Inception's learning rate (Section 4.2.1), the BN-x learning rates decay 6x
faster, Inception reached 72.2% after 31 million steps (Figure 3); the CPU
ablation scales learning rates by 10 and converts GoogLeNet's 8-epoch decay
interval to MNIST epochs of 60,000 / 32 = 1,875 steps.
"""

import importlib
import os
import sys
import warnings

import pytest
from ml_collections.config_flags import config_flags as ml_config_flags

import commands
from bn_zoo.training import config_paths
from bn_zoo.training.errors import ConfigError
from commands import CONFIGS, ROOT

# What each removed file trained: model, the recipe its learning rate came
# from, activation override (ablation), training steps (ImageNet).
INCEPTION_STEPS = 31_000_000
REMOVED = {
    "imagenet_inception.py": ("inception", INCEPTION_STEPS),
    "imagenet_bn_baseline.py": ("bn_baseline", INCEPTION_STEPS),
    "imagenet_bn_x5.py": ("bn_x5", INCEPTION_STEPS // 6),
    "imagenet_bn_x30.py": ("bn_x30", INCEPTION_STEPS // 6),
    "imagenet_bn_x5_sigmoid.py": ("bn_x5_sigmoid", INCEPTION_STEPS // 6),
    "imagenet_bn_inception.py": ("bn_inception", INCEPTION_STEPS // 6),
    "ablation_inception.py": ("inception", "inception", None),
    "ablation_bn_baseline.py": ("bn_baseline", "bn_baseline", None),
    "ablation_bn_x5.py": ("bn_x5", "bn_x5", None),
    "ablation_bn_x30.py": ("bn_x30", "bn_x30", None),
    "ablation_bn_x5_sigmoid.py": ("bn_x5_sigmoid", "bn_x5_sigmoid", None),
    "ablation_inception_x5_lr.py": ("inception", "bn_x5", None),
    "ablation_inception_sigmoid.py": ("inception", "bn_x5", "sigmoid"),
    "mnist_mlp.py": ("mlp",),
    "mnist_bn_mlp.py": ("bn_mlp",),
}


def load(spelling):
    """A --config value loaded as ml_collections' flag parser loads it."""
    return ml_config_flags.ConfigFileFlagParser("config", lock_config=False).parse(
        os.path.join(CONFIGS, spelling))


def test_every_removed_file_has_a_variant_that_trains_the_same_run():
    import bn_zoo

    assert set(config_paths.REPLACED) == set(REMOVED)
    inception_rate = bn_zoo.model_info("inception").recipe["base_learning_rate"]
    for old, expected in REMOVED.items():
        assert not os.path.exists(os.path.join(CONFIGS, old))
        new_file, variant = config_paths.REPLACED[old]
        config = load(f"{new_file}:{variant}")
        assert config.model.name == expected[0], old
        if old.startswith("imagenet_"):
            assert config.num_train_steps == expected[1], old
            assert config.data.name == "imagenet"
        elif old.startswith("ablation_"):
            _, rate_of, activation = expected
            rate = config.optimizer.base_learning_rate
            ratio = {"inception": 1, "bn_baseline": 1, "bn_x5": 5, "bn_x30": 30,
                     "bn_x5_sigmoid": 5}[rate_of]  # Section 4.2.1.
            assert rate == pytest.approx(10 * ratio * inception_rate), old
            # 8 epochs of ImageNet as MNIST epochs of 1,875 steps; 6x faster for BN-x.
            assert config.schedule.decay_steps == (15_000 if ratio == 1 else 2_500), old
            assert config.model.kwargs.get("activation") == activation, old
            assert config.data.name == "mnist_inception"
            assert config.num_train_steps == 2000
    # The two MNIST variants differ in the model only (Section 4.1).
    mlp, bn_mlp = load("mnist.py:mlp").to_dict(), load("mnist.py:bn_mlp").to_dict()
    assert mlp.pop("model") != bn_mlp.pop("model") and mlp == bn_mlp
    # A bare file is its default variant, the baseline.
    assert load("imagenet.py").to_dict() == load("imagenet.py:inception").to_dict()
    assert load("mnist.py").to_dict() == load("mnist.py:mlp").to_dict()


@pytest.mark.parametrize("name", ["imagenet", "ablation", "mnist"])
def test_variants_are_listed_and_an_unknown_one_names_them(name):
    module = importlib.import_module(f"configs.{name}")
    for variant in module.VARIANTS:  # big_vision style: the docstring lists them.
        assert f"\n        {variant} " in module.get_config.__doc__, variant
    with pytest.raises(ConfigError) as raised:
        module.get_config("bn_x7")
    message = str(raised.value)
    assert message.startswith(f"configs/{name}.py has no variant 'bn_x7'; its variants are ")
    assert all(variant in message for variant in module.VARIANTS)
    assert "\n" not in message


def test_the_command_line_refuses_a_removed_file_with_the_new_spelling(tmp_path):
    workdir = tmp_path / "run"
    result = commands.run("trainers.train", ["--config=configs/imagenet_bn_x5.py",
                                             f"--workdir={workdir}"], timeout=300,
                          tf_log_level="2")
    assert result.returncode == 1
    assert result.stderr.rstrip().splitlines()[-1] == (
        "ERROR (ConfigError): configs/imagenet_bn_x5.py was replaced by "
        "configs/imagenet.py:bn_x5; run with --config=configs/imagenet.py:bn_x5")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not workdir.exists()


@pytest.mark.parametrize("argv, message", [
    (["--config", "configs/ablation_inception_sigmoid.py", "--print_config"],
     "configs/ablation_inception_sigmoid.py was replaced by "
     "configs/ablation.py:inception_sigmoid; run with "
     "--config=configs/ablation.py:inception_sigmoid"),
    (["--config=configs/mnist.py:bn", "--workdir=/nonexistent"],
     "configs/mnist.py has no variant 'bn'; its variants are mlp, bn_mlp "
     "(--config=configs/mnist.py:<variant>)."),
    (["--config=configs/figure1.py:bn_mlp"],
     "configs/figure1.py has no variants; run with --config=configs/figure1.py"),
])
def test_a_wrong_spelling_is_one_line(argv, message, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exited:
        config_paths.refuse_replaced_config(["trainers/train.py", *argv])
    assert exited.value.code == 1
    assert capsys.readouterr().err == f"ERROR (ConfigError): {message}\n"


@pytest.mark.parametrize("value", [
    "configs/mnist.py:bn_mlp", "configs/imagenet.py", "configs/figure1.py",
    "configs/missing.py",  # Reported by cli.loaded.
])
def test_a_right_spelling_passes(value, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert config_paths.check_config_argument(value) is None
    config_paths.refuse_replaced_config(["trainers/train.py", "--config", value])


def test_a_file_of_the_old_name_that_exists_is_loaded(tmp_path):
    own = tmp_path / "mnist_bn_mlp.py"
    own.write_text("def get_config():\n    return None\n")
    assert config_paths.check_config_argument(str(own)) is None
    assert config_paths.check_config_argument(str(tmp_path / "mnist_mlp.py")) == (
        f"{tmp_path}/mnist_mlp.py was replaced by {tmp_path}/mnist.py:mlp; run with "
        f"--config={tmp_path}/mnist.py:mlp")


def test_the_ablation_names_a_run_that_is_not_a_variant():
    from bn_zoo.paper import figure3
    from configs import ablation, figure3_cpu

    config = figure3_cpu.get_config()
    runs = figure3.ablation_run_configs(config, ablation.get_config)
    assert list(runs) == list(config.runs) == list(ablation.VARIANTS)
    assert {r.num_train_steps for r in runs.values()} == {config.num_train_steps}
    config.runs = ("inception", "bn_x7")
    with pytest.raises(ConfigError, match=r"^config.runs names 'bn_x7': configs/ablation.py "
                                          r"has no variant 'bn_x7'; its variants are inception,"):
        figure3.ablation_run_configs(config, ablation.get_config)


@pytest.mark.parametrize("old, new, names", [
    ("bn_zoo.results", "bn_zoo.paper.figure3", ("figure3_table", "check_claims", "plot")),
    ("bn_zoo.results", "bn_zoo.paper.workdirs", ("read_runs", "find_workdirs")),
    ("bn_zoo.plots.figure1", "bn_zoo.paper.figure1", ("plot", "summarize", "format_summary")),
    ("bn_zoo.plots.lr_sweep", "bn_zoo.paper.lr_sweep", ("claim", "run_row", "plot")),
])
def test_the_old_homes_warn_and_hold_the_same_functions(old, new, names, monkeypatch):
    for module in [m for m in sys.modules if m == old or m == "bn_zoo.plots"]:
        monkeypatch.delitem(sys.modules, module)
    with pytest.warns(DeprecationWarning, match=new.rsplit(".", 1)[0]):
        deprecated = importlib.import_module(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        current = importlib.import_module(new)
    for name in names:
        assert getattr(deprecated, name) is getattr(current, name)
