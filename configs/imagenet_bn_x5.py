r"""Section 4.2.2: BN-x5 (Section 4.2.1 changes, 5x Inception's learning rate) on ImageNet.

    python -m trainers.train --config=configs/imagenet_bn_x5.py --workdir=workdirs/imagenet/bn_x5

The recipe of the registry: the learning rate, 6x faster decay, L2 / 5, no
dropout, no LRN, half-strength photometric distortions. Its learning rate
decays 6x faster than Inception's, so it trains 6x fewer steps. Knobs, data
and overrides: see configs/imagenet_inception.py.
"""

from configs.imagenet_inception import INCEPTION_STEPS, imagenet_config


def get_config():
    return imagenet_config("bn_x5", num_train_steps=INCEPTION_STEPS // 6)
