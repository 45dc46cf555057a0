r"""Figure 3 at CPU scale (Section 4.2.2): one run of the ablation.

    python -m trainers.train --config=configs/ablation.py:bn_x5 --workdir=workdirs/ablation/bn_x5

The ImageNet ablation of Figure 3 shrunk to fit a 2-core CPU: the same
networks at depth multiplier 0.1 (16 to 35 filters per convolution)
on real MNIST digits resized to 32×32 RGB (`config.data.name =
"mnist_inception"`), batch 32 (the paper's), the same number of steps and the
same data order for every run. Everything else is the model's recipe in the
registry (`bn_zoo.model_info(name).recipe`): momentum SGD, L2 weight decay
(5× smaller for BN-x), dropout and LRN (for `inception` and `bn_baseline`),
with two rescalings that keep the recipes' ratios:

- learning rate: the recipe's × 10, so that the ratios of the paper hold (BN-x5 5×, BN-x30 30× Inception's) while the baseline learns
  within a few thousand steps instead of the paper's 31 million;
- decay interval: the recipe's in epochs (8 ImageNet epochs, 6× fewer for
  BN-x), converted to MNIST epochs of 1,875 steps.

The setup is `bn_zoo.paper.setups.ablation_config`.

The runs are the variants (listed in `get_config`'s docstring): the five
Inception variants of Figure 3 and two runs of Section 4.2.2 without BN,
Inception at BN-x5's learning rate ("the model parameters reached machine
infinity") and Inception with sigmoid ("never achieves better than 1/1000
accuracy"). `python -m trainers.ablation --config=configs/figure3_cpu.py`
runs all of them and prints the table.
"""

from bn_zoo.paper import setups
from bn_zoo.paper.setups import ablation_config  # noqa: F401 - the builder, also here

VARIANTS = setups.ABLATION_VARIANTS


def get_config(arg=None):
    """One run of the CPU-scale Figure 3 ablation; `arg` names it.

    Variants (--config=configs/ablation.py:<variant>):
        inception           Inception without BN (the default)
        bn_baseline         BN-Baseline: Inception with BN, Inception's recipe
        bn_x5               BN-x5: 5x Inception's learning rate
        bn_x30              BN-x30: 30x Inception's learning rate
        bn_x5_sigmoid       BN-x5-Sigmoid: BN-x5 with sigmoid
        inception_x5_lr     Inception without BN at BN-x5's learning rate and
                            decay interval
        inception_sigmoid   Inception without BN, with sigmoid instead of ReLU,
                            at BN-x5-Sigmoid's learning rate

    Raises:
        ConfigError: `arg` is not one of these.
    """
    return setups.ablation_run(arg)
