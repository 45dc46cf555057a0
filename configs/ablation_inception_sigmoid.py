r"""Figure 3 at CPU scale: Inception without BN, with sigmoid activations.

    python -m trainers.train --config=configs/ablation_inception_sigmoid.py \
        --workdir=workdirs/ablation/inception_sigmoid

Section 4.2.2: "Without Batch Normalization, Inception with sigmoid never
achieves better than 1/1000 accuracy" (chance). The counterpart of
configs/ablation_bn_x5_sigmoid.py without BN: Inception's network and recipe
with sigmoid instead of ReLU, at BN-x5-Sigmoid's learning rate.
"""

from configs.ablation_inception import ablation_config


def get_config():
    return ablation_config("inception", learning_rate_of="bn_x5", activation="sigmoid")
