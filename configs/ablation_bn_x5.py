r"""Figure 3 at CPU scale (Section 4.2.2): bn_x5.

    python -m trainers.train --config=configs/ablation_bn_x5.py --workdir=workdirs/ablation/bn_x5

The shared setup is described in configs/ablation_inception.py.
"""

from configs.ablation_inception import ablation_config


def get_config():
    return ablation_config("bn_x5")
