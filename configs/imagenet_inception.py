r"""Section 4.2: Inception (Figure 5 without BN) on ImageNet, the paper's recipe.

    python -m trainers.train --config=configs/imagenet_inception.py --workdir=workdirs/imagenet/inception
    # TPU, 8 replicas, bfloat16 (the learning rate scales with the global batch):
    python -m trainers.train --config=configs/imagenet_inception.py --workdir=gs://BUCKET/inception \
        --strategy=tpu --tpu=NAME --config.global_batch_size=1024 \
        --config.num_train_steps=968750 --config.mixed_precision=mixed_bfloat16 \
        --config.data.dtype=bfloat16 --config.data.data_dir=gs://BUCKET/tensorflow_datasets

Every training knob left at None comes from the model's recipe in the
registry (`bn_zoo.model_info(name).recipe`, Sections 4.2 and 4.2.1) and can be
overridden with --config.<field>=value:

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
choices; divide them by global_batch_size / 32 when the batch is larger.
"""

import ml_collections
from ml_collections.config_dict import placeholder

import bn_zoo
from bn_zoo.training import config as config_lib
from bn_zoo.training import inputs

INCEPTION_STEPS = 31_000_000  # Figure 3: Inception's steps to its 72.2%.


def imagenet_config(model_name, num_train_steps=None):
    """The Section 4.2 run of a registered Inception variant on ImageNet."""
    if bn_zoo.model_info(model_name).family != "inception":
        raise ValueError(f"{model_name!r} is not an Inception variant.")
    config = config_lib.default_config()
    config.model.name = model_name
    config.data = inputs.default_config("imagenet")
    # 1000 classes, 224x224: the model follows the data's class count; change
    # model.kwargs.input_shape together with data.image_size.
    config.model.kwargs.classes = config.data.get_ref("num_classes")
    config.model.kwargs.input_shape = (224, 224, 3)
    config.model.kwargs.depth_multiplier = 1.0  # The paper's widths.
    config.model.kwargs.dropout_rate = placeholder(float)  # None: the recipe's.
    config.model.kwargs.lrn = placeholder(bool)  # None: the recipe's.
    # Keras' BN defaults; the paper does not state them. Ignored without BN.
    config.model.kwargs.batch_norm_kwargs = ml_collections.ConfigDict(
        {"momentum": 0.99, "epsilon": 1e-3})
    config.num_train_steps = num_train_steps or INCEPTION_STEPS
    config.steps_per_loop = 1000
    config.log_every_steps = 1000
    config.eval_every_steps = 100_000
    config.eval_batch_size = 1000  # The 50,000 validation images in 50 batches.
    config.checkpoint_every_steps = 10_000
    config.max_checkpoints_to_keep = 5
    return config


def get_config():
    return imagenet_config("inception")
