r"""Section 4.1 (Figure 1): a 3 x 100 sigmoid MLP on MNIST, without and with BN.

    python -m trainers.train --config=configs/mnist.py:mlp --workdir=workdirs/mnist_mlp
    python -m trainers.train --config=configs/mnist.py:bn_mlp --workdir=workdirs/mnist_bn_mlp

Both variants share everything (seed, data order, optimizer, learning rate)
except the model. Batch 60 and 50,000 steps are the paper's; the optimizer and
learning rate (which the paper does not state) come from the model's recipe
in bn_zoo/models/recipes.py (MNIST_RECIPE). Every 1,000 steps: accuracy on
the 10,000 test images and the 15th/50th/85th percentiles of the input to the
sigmoid of unit 0 of the last hidden layer over the first 1,000 test images.
At the end the population statistics of Algorithm 2 are estimated over the
training set and, for bn_mlp, the test accuracy is reported with the moving
averages and with them. The setup is `bn_zoo.paper.setups.mnist_config`.
"""

from bn_zoo.paper import setups
from bn_zoo.paper.setups import mnist_config  # noqa: F401 - the builder, also here

VARIANTS = setups.MNIST_VARIANTS


def get_config(arg=None):
    """The Section 4.1 run of one network; `arg` names it.

    Variants (--config=configs/mnist.py:<variant>):
        mlp      the network without BN (the default)
        bn_mlp   the same network with BN before every sigmoid

    Raises:
        ConfigError: `arg` is not one of these.
    """
    return setups.mnist_run(arg)
