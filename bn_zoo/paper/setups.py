"""The paper's training runs as trainer configs: what the config files build on.

    mnist_config(model)        Section 4.1 (Figure 1): the 3 x 100 sigmoid MLP
                               on MNIST; configs/mnist.py, figure1.py, lr_sweep.py
    imagenet_config(model)     Section 4.2: an Inception variant on ImageNet
                               with the paper's recipe; configs/imagenet.py
    ablation_config(model)     Figure 3 at CPU scale (Section 4.2.2);
                               configs/ablation.py, figure3_cpu.py

`mnist_run`, `imagenet_run` and `ablation_run` build the variant a config file
names (`--config=configs/<file>.py:<variant>`; the variants are the keys of
MNIST_VARIANTS, IMAGENET_VARIANTS and ABLATION_VARIANTS). The config files
are thin `get_config(arg)` functions over these, so that they import nothing
but `bn_zoo` and load the same from a checkout and from an installed wheel.
Every function returns a new `ml_collections.ConfigDict` (a trainer config,
`bn_zoo.training.config.default_config` with the run's fields set).
"""

import ml_collections
from ml_collections.config_dict import placeholder

from bn_zoo.models import catalogue, recipes
from bn_zoo.training import config as config_lib
from bn_zoo.training import config_paths
from bn_zoo.training import inputs

# Section 4.1: configs/mnist.py's variants.
MNIST_VARIANTS = {
    "mlp": "the network without BN (the default)",
    "bn_mlp": "the same network with BN before every sigmoid",
}


def mnist_config(model_name):
    """The Section 4.1 setup shared by both networks of Figure 1.

    Batch 60 and 50,000 steps are the paper's; the optimizer and learning
    rate (which the paper does not state) come from the model's recipe
    (`bn_zoo.models.recipes.MNIST_RECIPE`). Every 1,000 steps: accuracy on the
    10,000 test images and the 15th/50th/85th percentiles of the input to the
    sigmoid of unit 0 of the last hidden layer over the first 1,000 test
    images; at the end, Algorithm 2 over the whole training set.
    """
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


def mnist_run(variant=None):
    """`mnist_config` of a variant of configs/mnist.py (None: "mlp").

    Raises:
        ConfigError: `variant` is not a key of MNIST_VARIANTS.
    """
    return mnist_config(config_paths.variant(variant, MNIST_VARIANTS, "configs/mnist.py", "mlp"))


# Section 4.2: Inception's steps to its maximum of 72.2% (Figure 3).
INCEPTION_STEPS = 31_000_000
# {configs/imagenet.py's variant: (description, training steps)}: the BN-x
# networks, whose learning rate decays 6x faster, get 6x fewer steps.
IMAGENET_RUNS = {
    "inception": ("Inception without BN (the default)", INCEPTION_STEPS),
    "bn_baseline": ("BN-Baseline: Inception with BN, Inception's recipe unchanged",
                    INCEPTION_STEPS),
    "bn_x5": ("BN-x5: the Section 4.2.1 changes, 5x Inception's learning rate",
              INCEPTION_STEPS // 6),
    "bn_x30": ("BN-x30: BN-x5 with 30x Inception's learning rate", INCEPTION_STEPS // 6),
    "bn_x5_sigmoid": ("BN-x5-Sigmoid: BN-x5 with sigmoid instead of ReLU",
                      INCEPTION_STEPS // 6),
    "bn_inception": ("BN-Inception, the single network of Figure 4 (trained as BN-x30)",
                     INCEPTION_STEPS // 6),
}
IMAGENET_VARIANTS = {name: description for name, (description, _) in IMAGENET_RUNS.items()}


def imagenet_config(model_name, num_train_steps=None):
    """The Section 4.2 run of a registered Inception variant on ImageNet.

    The training knobs left at None (optimizer, schedule, weight decay,
    dropout, LRN, distortions, batch) come from the model's recipe in the
    registry. `num_train_steps`: None gives INCEPTION_STEPS.

    Raises:
        ValueError: `model_name` is not an Inception variant.
    """
    if catalogue.model_info(model_name).family != "inception":
        raise ValueError(f"{model_name!r} is not an Inception variant.")
    config = config_lib.default_config()
    config.model.name = model_name
    config.data = inputs.default_config("imagenet")
    # 1000 classes, 224x224: the model follows the data's class count; change
    # model.kwargs.input_shape together with data.image_size.
    config.model.kwargs.classes = config.data.get_ref("num_classes")
    config.model.kwargs.input_shape = (224, 224, 3)
    config.model.kwargs.depth_multiplier = 1.0  # The paper's widths.
    config.model.kwargs.dropout_rate = placeholder(float)  # None: the recipe's.
    config.model.kwargs.lrn = placeholder(bool)  # None: the recipe's.
    # Keras' BN defaults; the paper does not state them. Ignored without BN.
    config.model.kwargs.batch_norm_kwargs = ml_collections.ConfigDict(
        {"momentum": 0.99, "epsilon": 1e-3})
    config.num_train_steps = num_train_steps or INCEPTION_STEPS
    config.steps_per_loop = 1000
    config.log_every_steps = 1000
    config.eval_every_steps = 100_000
    config.eval_batch_size = 1000  # The 50,000 validation images in 50 batches.
    config.checkpoint_every_steps = 10_000
    config.max_checkpoints_to_keep = 5
    return config


def imagenet_run(variant=None):
    """`imagenet_config` of a variant of configs/imagenet.py (None: "inception").

    Raises:
        ConfigError: `variant` is not a key of IMAGENET_VARIANTS.
    """
    name = config_paths.variant(variant, IMAGENET_VARIANTS, "configs/imagenet.py", "inception")
    return imagenet_config(name, num_train_steps=IMAGENET_RUNS[name][1])


# Figure 3 at CPU scale: the networks at a tenth of their width on MNIST
# digits resized to 32x32 RGB, batch 32 (the paper's), the same steps and data
# order for every run.
ABLATION_IMAGE_SIZE = 32
ABLATION_DEPTH_MULTIPLIER = 0.1
ABLATION_BATCH_SIZE = 32
ABLATION_NUM_TRAIN_STEPS = 2000
ABLATION_EVAL_EVERY_STEPS = 100
# The recipes' learning rates times this: the paper's ratios (BN-x5 5x, BN-x30
# 30x Inception's) kept, the baseline learning within a few thousand steps.
ABLATION_LEARNING_RATE_SCALE = 10.0
MNIST_TRAIN_EXAMPLES = 60_000

# {configs/ablation.py's variant: (description, ablation_config's keyword arguments)}.
ABLATION_RUNS = {
    "inception": ("Inception without BN (the default)", {"model_name": "inception"}),
    "bn_baseline": ("BN-Baseline: Inception with BN, Inception's recipe",
                    {"model_name": "bn_baseline"}),
    "bn_x5": ("BN-x5: 5x Inception's learning rate", {"model_name": "bn_x5"}),
    "bn_x30": ("BN-x30: 30x Inception's learning rate", {"model_name": "bn_x30"}),
    "bn_x5_sigmoid": ("BN-x5-Sigmoid: BN-x5 with sigmoid", {"model_name": "bn_x5_sigmoid"}),
    "inception_x5_lr": ("Inception without BN at BN-x5's learning rate and decay interval",
                        {"model_name": "inception", "learning_rate_of": "bn_x5"}),
    "inception_sigmoid": ("Inception without BN, with sigmoid, at BN-x5-Sigmoid's rate",
                          {"model_name": "inception", "learning_rate_of": "bn_x5",
                           "activation": "sigmoid"}),
}
ABLATION_VARIANTS = {name: description for name, (description, _) in ABLATION_RUNS.items()}


def ablation_config(model_name, learning_rate_of=None, activation=None):
    """The CPU-scale Figure 3 run of `model_name`.

    Everything but the rescaled learning rate and decay interval is the
    model's recipe: the learning rate is the recipe's times
    ABLATION_LEARNING_RATE_SCALE; the decay interval, the recipe's in
    ImageNet epochs, converted to MNIST epochs of 60,000 / 32 = 1,875 steps.

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
    config.model.kwargs.input_shape = (ABLATION_IMAGE_SIZE, ABLATION_IMAGE_SIZE, 3)
    config.model.kwargs.classes = 10
    config.model.kwargs.depth_multiplier = ABLATION_DEPTH_MULTIPLIER
    if activation is not None:
        config.model.kwargs.activation = activation
    config.data = inputs.default_config("mnist_inception")
    config.data.image_size = ABLATION_IMAGE_SIZE
    config.seed = 0  # Same initialization seed and data order for every run.
    config.global_batch_size = ABLATION_BATCH_SIZE
    config.num_train_steps = ABLATION_NUM_TRAIN_STEPS
    config.steps_per_loop = ABLATION_EVAL_EVERY_STEPS
    config.log_every_steps = ABLATION_EVAL_EVERY_STEPS
    config.eval_every_steps = ABLATION_EVAL_EVERY_STEPS
    config.eval_batch_size = 2000
    config.checkpoint_every_steps = 500

    recipe = catalogue.model_info(learning_rate_of or model_name).recipe
    config.optimizer.base_learning_rate = (ABLATION_LEARNING_RATE_SCALE
                                           * recipe["base_learning_rate"])
    imagenet_steps_per_epoch = recipes.IMAGENET_TRAIN_EXAMPLES / recipe["batch_size_per_replica"]
    mnist_steps_per_epoch = MNIST_TRAIN_EXAMPLES / ABLATION_BATCH_SIZE
    config.schedule.decay_steps = max(1, round(
        recipe["lr_decay_steps"] / imagenet_steps_per_epoch * mnist_steps_per_epoch))
    return config


def ablation_run(variant=None):
    """`ablation_config` of a variant of configs/ablation.py (None:
    "inception"); the `run_config_of` of `bn_zoo.paper.figure3.run_ablation`.

    Raises:
        ConfigError: `variant` is not a key of ABLATION_VARIANTS.
    """
    name = config_paths.variant(variant, ABLATION_VARIANTS, "configs/ablation.py", "inception")
    return ablation_config(**ABLATION_RUNS[name][1])
