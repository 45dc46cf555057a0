r"""Section 3.3, scale invariance, as an experiment on MNIST.

    python -m trainers.scale_invariance --config=configs/scale_invariance.py --workdir=workdirs/scale

"Batch Normalization also makes training more resilient to the parameter
scale. [...] BN((aW)u) = BN(Wu) [...] larger weights lead to smaller
gradients, and Batch Normalization will stabilize the parameter growth."

Trains the Figure 1 MLP without and with BN from initial hidden-layer weights
scaled by each a of `config.scales` (same seed, same batches), recording the
Frobenius norm of every hidden kernel and of its gradient every
`log_every_steps` steps, then writes

    workdir/scale_invariance.png  hidden2's kernel norm ‖W‖ and gradient norm
                                  ‖∂L/∂W‖ against the step, one curve per
                                  (network, a)
    workdir/scale_invariance.csv  every logged norm: network, scale, step,
                                  layer, weight_norm, gradient_norm
    workdir/scale_invariance.md   per run: ‖W‖ and ‖∂L/∂W‖ of hidden2 at the
                                  first and last step, final test accuracy

and prints the table. A run takes a few seconds; nothing is resumed. The
experiment itself is `bn_zoo.paper.scale_invariance`.
"""

from . import quiet  # First: quiets TensorFlow before it starts.

from absl import app, flags

from bn_zoo.training import cli

flags.adopt_module_key_flags(cli)


def main(argv):
    from bn_zoo.paper import scale_invariance  # Here: --help skips TensorFlow.

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    quiet.set_up_logging()
    config = cli.loaded(cli.CONFIG.value)
    if cli.PRINT_CONFIG.value:
        print(config, flush=True)
        return
    print(cli.run(lambda: scale_invariance.run_experiment(config, cli.WORKDIR.value)),
          flush=True)


def run():
    """The console command `bn-zoo-scale-invariance` (pyproject.toml), as
    `python -m trainers.scale_invariance`."""
    cli.require_flags()
    quiet.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
