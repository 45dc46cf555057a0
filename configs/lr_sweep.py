r"""Section 3.3's claim that BN permits higher learning rates, on MNIST.

    python -m trainers.lr_sweep --config=configs/lr_sweep.py --workdir=workdirs/lr_sweep

Trains the Figure 1 MLP without BN and with BN (configs/mnist.py, the same
seed and data order) at every learning rate of `learning_rates`, each for
`train.num_train_steps` steps (10,000 = a fifth of the paper's 50,000, so that
the 18 runs take about 10 minutes on 2 cores). Only the base learning rate
changes between runs; its decay (0.96 per 1,000 steps) is the recipe's.
Override shared settings as --config.train.<field>=value.
"""

import ml_collections

from bn_zoo.paper.setups import mnist_config


def get_config():
    config = ml_collections.ConfigDict()
    config.networks = ("mlp", "bn_mlp")  # Baseline first, then BN.
    # A log scale from 0.01 to 100; the recipe's own rate is 0.25.
    config.learning_rates = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
    # A run is "good" if its final test accuracy is at least this; steps to
    # reach it are reported too.
    config.good_accuracy = 0.97
    # Below this final accuracy a run that stayed finite "stalled" (chance is
    # 0.1135, the share of the most frequent test digit).
    config.stalled_below = 0.2
    train = mnist_config("mlp")  # model.name is set per network.
    train.num_train_steps = 10_000
    train.eval_every_steps = 500
    train.steps_per_loop = 500
    train.log_every_steps = 5000
    train.checkpoint_every_steps = 5000
    train.probe.layer = None  # Figure 1's percentiles are not needed here.
    train.population_batches = 200  # 12,000 training images for Algorithm 2.
    config.train = train
    return config
