r"""Section 4.2.2: BN-Baseline on ImageNet, Inception's recipe unchanged.

    python -m trainers.train --config=configs/imagenet_bn_baseline.py --workdir=workdirs/imagenet/bn_baseline

Knobs, data and overrides: see configs/imagenet_inception.py.
"""

from configs.imagenet_inception import imagenet_config


def get_config():
    return imagenet_config("bn_baseline")
