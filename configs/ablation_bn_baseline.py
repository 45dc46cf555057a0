r"""Figure 3 at CPU scale (Section 4.2.2): bn_baseline.

    python -m trainers.train --config=configs/ablation_bn_baseline.py --workdir=workdirs/ablation/bn_baseline

The shared setup is described in configs/ablation_inception.py.
"""

from configs.ablation_inception import ablation_config


def get_config():
    return ablation_config("bn_baseline")
