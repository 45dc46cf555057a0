r"""Section 4.2: the Inception variants of Figure 3 on ImageNet, the paper's recipes.

    python -m trainers.train --config=configs/imagenet.py:bn_x5 --workdir=workdirs/imagenet/bn_x5
    # TPU, 8 replicas, bfloat16 (the learning rate scales with the global batch):
    python -m trainers.train --config=configs/imagenet.py:inception --workdir=gs://BUCKET/inception \
        --strategy=tpu --tpu=NAME --config.global_batch_size=1024 \
        --config.num_train_steps=968750 --config.mixed_precision=mixed_bfloat16 \
        --config.data.dtype=bfloat16 --config.data.data_dir=gs://BUCKET/tensorflow_datasets

One variant per registered Inception variant (the list is `get_config`'s
docstring). Every training knob left at None comes from the model's recipe in
the registry (`bn_zoo.model_info(name).recipe`, Sections 4.2 and 4.2.1) and
can be overridden with --config.<field>=value:

    momentum SGD                     optimizer.name, optimizer.momentum
    base learning rate at batch 32,  optimizer.base_learning_rate,
      scaled with the global batch   optimizer.reference_batch_size
    exponential decay (staircase)    schedule.decay_rate, schedule.decay_steps
    L2 weight decay                  optimizer.weight_decay
    dropout, LRN                     model.kwargs.dropout_rate, model.kwargs.lrn
    network width, BN momentum       model.kwargs.depth_multiplier,
                                     model.kwargs.batch_norm_kwargs.momentum
    photometric distortions          data.distortion_strength
    within-shard shuffling           data.shuffle_buffer_size (recipe's
                                     shuffle_thoroughly: 10,000, or 1 = each
                                     shard read in order)
    global batch                     global_batch_size (the paper's 32)

The BN-x recipes (bn_x5, bn_x30, bn_x5_sigmoid, bn_inception): 5x or 30x the
learning rate, 6x faster decay, L2 / 5, no dropout, no LRN, half-strength
photometric distortions.

The data is `imagenet2012` from TensorFlow Datasets (prepared from the manual
download, under --data_dir or $TFDS_DATA_DIR) or, with
--config.data.source=tfrecord --config.data.data_dir=DIR, TFRecord shards in
the standard layout. Mixed precision, XLA and synchronized BN are switches:
--config.mixed_precision=mixed_bfloat16 (TPU; with --config.data.dtype=bfloat16)
or mixed_float16 (GPU, with dynamic loss scaling), --config.jit_compile=True,
--config.synchronized_batch_norm=True. Validation: top-1 and top-5 accuracy
on the 50,000 validation images (central crop), every `eval_every_steps`.

`num_train_steps` is not in the paper's recipe: Inception reached its maximum
of 72.2% after 31 million steps of batch 32 (Figure 3); the BN-x networks,
whose learning rate decays 6x faster, get 6x fewer. These are bn_zoo's
choices; divide them by global_batch_size / 32 when the batch is larger. The
setup is `bn_zoo.paper.setups.imagenet_config`.
"""

from bn_zoo.paper import setups
from bn_zoo.paper.setups import INCEPTION_STEPS, imagenet_config  # noqa: F401 - also here

VARIANTS = setups.IMAGENET_VARIANTS


def get_config(arg=None):
    """The Section 4.2 ImageNet run of one Inception variant; `arg` names it.

    Variants (--config=configs/imagenet.py:<variant>):
        inception       Inception without BN (the default); 31M steps
        bn_baseline     BN-Baseline: Inception with BN, Inception's recipe
                        unchanged; 31M steps
        bn_x5           BN-x5: the Section 4.2.1 changes, 5x Inception's
                        learning rate; 31M / 6 steps
        bn_x30          BN-x30: BN-x5 with 30x Inception's learning rate;
                        31M / 6 steps
        bn_x5_sigmoid   BN-x5-Sigmoid: BN-x5 with sigmoid instead of ReLU;
                        31M / 6 steps
        bn_inception    BN-Inception, the single network of Figure 4
                        (trained as BN-x30); 31M / 6 steps

    Raises:
        ConfigError: `arg` is not one of these.
    """
    return setups.imagenet_run(arg)
