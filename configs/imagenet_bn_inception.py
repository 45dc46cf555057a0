r"""Section 4.2.2: BN-Inception, the single network of Figure 4 (trained as BN-x30) on ImageNet.

    python -m trainers.train --config=configs/imagenet_bn_inception.py --workdir=workdirs/imagenet/bn_inception

The recipe of the registry: the learning rate, 6x faster decay, L2 / 5, no
dropout, no LRN, half-strength photometric distortions. Its learning rate
decays 6x faster than Inception's, so it trains 6x fewer steps. Knobs, data
and overrides: see configs/imagenet_inception.py.
"""

from configs.imagenet_inception import INCEPTION_STEPS, imagenet_config


def get_config():
    return imagenet_config("bn_inception", num_train_steps=INCEPTION_STEPS // 6)
