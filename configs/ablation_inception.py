r"""Figure 3 at CPU scale (Section 4.2.2): Inception without BN.

    python -m trainers.train --config=configs/ablation_inception.py --workdir=workdirs/ablation/inception

The ImageNet ablation of Figure 3 shrunk to fit a 2-core CPU: the same
networks at depth multiplier 0.1 (16 to 35 filters per convolution)
on real MNIST digits resized to 32×32 RGB (`config.data.name =
"mnist_inception"`), batch 32 (the paper's), the same number of steps and the
same data order for every run. Everything else is the model's recipe in the
registry (`bn_zoo.model_info(name).recipe`): momentum SGD, L2 weight decay
(5× smaller for BN-x), dropout and LRN (for `inception` and `bn_baseline`),
with two rescalings that keep the recipes' ratios:

- learning rate: the recipe's × LEARNING_RATE_SCALE, so that the ratios of the
  paper hold (BN-x5 5×, BN-x30 30× Inception's) while the baseline learns
  within a few thousand steps instead of the paper's 31 million;
- decay interval: the recipe's in epochs (8 ImageNet epochs, 6× fewer for
  BN-x), converted to MNIST epochs of 1,875 steps.

`trainers/ablation.py --config=configs/figure3_cpu.py` runs all of them and
prints the table.
"""

import bn_zoo
from bn_zoo.models import registry
from bn_zoo.training import config as config_lib
from bn_zoo.training import inputs

IMAGE_SIZE = 32
DEPTH_MULTIPLIER = 0.1
BATCH_SIZE = 32
NUM_TRAIN_STEPS = 2000
EVAL_EVERY_STEPS = 100
LEARNING_RATE_SCALE = 10.0
MNIST_TRAIN_EXAMPLES = 60_000


def ablation_config(model_name, learning_rate_of=None, activation=None):
    """The CPU-scale Figure 3 run of `model_name`.

    Args:
        model_name: A registered Inception variant.
        learning_rate_of: Take the learning rate (and its decay interval) of
            this model's recipe instead, e.g. "bn_x5" for Inception at
            BN-x5's rate.
        activation: Override the variant's activation ("sigmoid" for
            Inception with sigmoid).
    """
    config = config_lib.default_config()
    config.model.name = model_name
    config.model.kwargs.input_shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
    config.model.kwargs.classes = 10
    config.model.kwargs.depth_multiplier = DEPTH_MULTIPLIER
    if activation is not None:
        config.model.kwargs.activation = activation
    config.data = inputs.default_config("mnist_inception")
    config.data.image_size = IMAGE_SIZE
    config.seed = 0  # Same initialization seed and data order for every run.
    config.global_batch_size = BATCH_SIZE
    config.num_train_steps = NUM_TRAIN_STEPS
    config.steps_per_loop = EVAL_EVERY_STEPS
    config.log_every_steps = EVAL_EVERY_STEPS
    config.eval_every_steps = EVAL_EVERY_STEPS
    config.eval_batch_size = 2000
    config.checkpoint_every_steps = 500

    recipe = bn_zoo.model_info(learning_rate_of or model_name).recipe
    config.optimizer.base_learning_rate = LEARNING_RATE_SCALE * recipe["base_learning_rate"]
    imagenet_steps_per_epoch = registry.IMAGENET_TRAIN_EXAMPLES / recipe["batch_size_per_replica"]
    mnist_steps_per_epoch = MNIST_TRAIN_EXAMPLES / BATCH_SIZE
    config.schedule.decay_steps = max(1, round(
        recipe["lr_decay_steps"] / imagenet_steps_per_epoch * mnist_steps_per_epoch))
    return config


def get_config():
    return ablation_config("inception")
