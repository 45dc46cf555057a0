r"""Figure 3 at CPU scale (Section 4.2.2): the whole ablation in one command.

    python -m trainers.ablation --config=configs/figure3_cpu.py --workdir=workdirs/figure3_cpu

Trains each run of `runs` (configs/ablation.py:<run>: the five Inception
variants of Figure 3, then Inception at BN-x5's learning rate and Inception
with sigmoid, both without BN) one after the other in workdir/<run>, then
prints Figure 3's table and the paper's claims and plots accuracy against
steps. The shared setup (MNIST at 32x32 RGB, depth multiplier 0.1, batch 32,
the same steps and data order for every run) is in configs/ablation.py
(`bn_zoo.paper.setups.ablation_config`).
--config.num_train_steps=... shortens every run alike.
"""

import ml_collections
from ml_collections.config_dict import placeholder

from bn_zoo.paper import setups


def get_config():
    config = ml_collections.ConfigDict()
    config.runs = ("inception", "bn_baseline", "bn_x5", "bn_x30", "bn_x5_sigmoid",
                   "inception_x5_lr", "inception_sigmoid")
    config.baseline = "inception"  # Its maximum accuracy is the target (Figure 3).
    config.target = placeholder(float)  # Or a fixed accuracy, e.g. 0.95.
    # The same for every run.
    config.num_train_steps = setups.ABLATION_NUM_TRAIN_STEPS
    config.eval_every_steps = setups.ABLATION_EVAL_EVERY_STEPS
    config.data_dir = placeholder(str)  # None: $TFDS_DATA_DIR.
    return config
