r"""Trains one experiment of bn_zoo with the custom tf.distribute loop.

    python -m trainers.train --config=configs/mnist_bn_mlp.py --workdir=workdirs/bn_mlp
    python -m trainers.train --config=configs/mnist_bn_mlp.py --workdir=/tmp/short \
        --config.num_train_steps=2000 --strategy=mirrored --config.num_cpu_devices=2

Rerunning the same command resumes from the newest checkpoint in --workdir.
`--helpfull` lists every flag; the config fields are documented in
bn_zoo/training/config.py.
"""

from absl import app, flags

from bn_zoo.training import cli


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    cli.set_up_logging()
    config = cli.apply_overrides(cli.CONFIG.value)

    def train():
        from bn_zoo import training

        return training.train(config, cli.WORKDIR.value)

    final = cli.run(train)
    print("final:", ", ".join(f"{k}={v}" for k, v in sorted(final.items())), flush=True)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main, flags_parser=cli.parse_flags)
