r"""Section 4.1, the network without BN: 3 x 100 sigmoid MLP on MNIST.

    python -m trainers.train --config=configs/mnist_mlp.py --workdir=workdirs/mnist_mlp

Batch 60 and 50,000 steps are the paper's; the optimizer and learning rate
(which the paper does not state) come from the model's recipe in
bn_zoo/models/registry.py (MNIST_RECIPE). Every 1,000 steps: accuracy on the
10,000 test images and the 15th/50th/85th percentiles of the input to the
sigmoid of unit 0 of the last hidden layer over the first 1,000 test images.
"""

from bn_zoo.training import config as config_lib


def mnist_config(model_name):
    """The Section 4.1 setup shared by both networks of Figure 1."""
    config = config_lib.default_config()
    config.model.name = model_name
    config.data.name = "mnist"
    config.seed = 0  # Same initial seed and data order for both networks.
    # global_batch_size (60), num_train_steps (50,000), optimizer and schedule:
    # from the registry recipe.
    config.steps_per_loop = 1000
    config.log_every_steps = 5000
    config.eval_every_steps = 1000
    config.eval_batch_size = 10_000  # The whole test set in one batch.
    config.checkpoint_every_steps = 5000
    config.probe.layer = "hidden3_sigmoid"  # Its input is the sigmoid's input x.
    config.probe.unit = 0
    config.probe.num_examples = 1000
    config.probe.percentiles = (15, 50, 85)
    # Algorithm 2 at the end: 1,000 batches of 60 = the whole training set.
    config.population_batches = 1000
    return config


def get_config():
    return mnist_config("mlp")
