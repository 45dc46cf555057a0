r"""Figure 1 of the paper (Section 4.1): both MNIST networks, plot and summary.

    python -m trainers.figure1 --config=configs/figure1.py --workdir=workdirs/figure1

`train` is the trainer config shared by both networks (configs/mnist.py);
`networks` are trained one after the other with it, each in workdir/<network>.
Override the shared config as --config.train.<field>=value, e.g.
--config.train.num_train_steps=2000 for a quick run.
"""

import ml_collections

from bn_zoo.paper.setups import mnist_config


def get_config():
    config = ml_collections.ConfigDict()
    config.networks = ("mlp", "bn_mlp")  # Baseline first, then BN.
    config.train = mnist_config("mlp")  # model.name is set per network.
    # The targets the summary checks, on the real MNIST test set.
    config.targets = ml_collections.ConfigDict({
        "bn_min_accuracy": 0.98,  # BN net's final test accuracy.
        "bn_above_from_step": 5000,  # BN above the baseline at every eval from here.
        "bn_reaches_baseline_within": 25_000,  # Steps for BN to reach the baseline's final accuracy.
    })
    return config
