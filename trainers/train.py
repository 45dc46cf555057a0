r"""Trains one experiment of bn_zoo with the custom tf.distribute loop.

    python -m trainers.train --config=configs/mnist.py:bn_mlp --workdir=workdirs/bn_mlp
    python -m trainers.train --config=configs/mnist.py:bn_mlp --workdir=/tmp/short \
        --config.num_train_steps=2000 --strategy=mirrored --config.num_cpu_devices=2
    python -m trainers.train --config=configs/mnist.py:bn_mlp --print_config

Rerunning the same command resumes from the newest checkpoint in --workdir.
--print_config prints every config field (--config.<field>=value overrides
it) with its resolved value, its default and its meaning, and exits. Output:
bn_zoo's progress lines and the final results; --verbosity=0 adds the
libraries' logs (trainers/quiet.py).
"""

from . import quiet  # First: quiets TensorFlow before it starts.

from absl import app, flags

from bn_zoo.training import cli

flags.adopt_module_key_flags(cli)


def describe(config):
    """The --print_config text of a trainer config (after the flag overrides)."""
    from bn_zoo.training import describe as describe_lib

    header = (f"Config {cli.config_filename()}, resolved: after the command line's "
              "overrides, with the fields left at None filled from the recipe of model "
              f"{config.model.name!r} in the registry. Override any field with "
              "--config.<field>=<value>.")
    fields = describe_lib.trainer_fields(config, cli.overridden_fields())
    return describe_lib.format_fields(fields, header)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    config = cli.apply_overrides(cli.CONFIG.value)
    if cli.PRINT_CONFIG.value:
        print(cli.run(lambda: describe(config)), flush=True)
        return

    def train():
        from bn_zoo import training

        return training.train(config, cli.WORKDIR.value,
                              connect_timeout=cli.CLUSTER_TIMEOUT.value)

    final = cli.run(train)
    print("final:", ", ".join(f"{k}={v}" for k, v in sorted(final.items())), flush=True)


def run():
    """The console command `bn-zoo-train` (pyproject.toml), as
    `python -m trainers.train`."""
    cli.require_flags()
    quiet.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
