r"""Section 4.1, the network with BN before every sigmoid.

    python -m trainers.train --config=configs/mnist_bn_mlp.py --workdir=workdirs/mnist_bn_mlp

Identical to configs/mnist_mlp.py (same seed, data order, optimizer and
learning rate) except for the model. At the end the population statistics of
Algorithm 2 are estimated over the training set and the test accuracy is
reported with the moving averages and with them.
"""

from configs.mnist_mlp import mnist_config


def get_config():
    return mnist_config("bn_mlp")
