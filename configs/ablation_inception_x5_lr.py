r"""Figure 3 at CPU scale: Inception without BN at BN-x5's learning rate.

    python -m trainers.train --config=configs/ablation_inception_x5_lr.py \
        --workdir=workdirs/ablation/inception_x5_lr

Section 4.2.2: "we also attempted to train the original Inception with the
increased learning rate (5x, as in BN-x5) [...] the model parameters reached
machine infinity". Same network and recipe as configs/ablation_inception.py,
with BN-x5's learning rate and decay interval.
"""

from configs.ablation_inception import ablation_config


def get_config():
    return ablation_config("inception", learning_rate_of="bn_x5")
