r"""Section 3.3, scale invariance, on MNIST: what scaling the initial weights
by `a` does to training with and without BN.

    python -m trainers.scale_invariance --config=configs/scale_invariance.py --workdir=workdirs/scale

Each network of `networks` starts from the same random weights (seed), with
the kernel of every hidden layer (the W of x = Wu that BN normalizes)
multiplied by each `scales` value; the output layer is left as it is. All runs
then see the same batches with the recipe's optimizer (SGD at 0.25, decayed
0.96 per 1,000 steps, batch 60).
"""

import ml_collections


def get_config():
    config = ml_collections.ConfigDict()
    config.networks = ("mlp", "bn_mlp")
    config.scales = (0.1, 1.0, 10.0)
    config.seed = 0
    config.num_train_steps = 3000
    config.log_every_steps = 100  # Weight and gradient norms every this many steps.
    config.batch_size = 60
    config.learning_rate = 0.25
    config.decay_rate = 0.96
    config.decay_steps = 1000
    config.train_split = "train"  # TFDS split (or slice, e.g. "train[:6000]").
    config.test_split = "test"
    config.data_dir = None  # TFDS data directory; None: $TFDS_DATA_DIR.
    return config
