r"""Fine-tuning a zoo network on a folder of your photos (docs/finetuning.md).

    python -m trainers.train --config=configs/finetune.py \
        --config.data.directory=photos --config.model.weights=imagenet --workdir=workdirs/photos
    python -m trainers.train --config=configs/finetune.py:adamw \
        --config.data.directory=photos --config.model.weights=backbone.weights.h5 \
        --workdir=workdirs/photos_adamw

`photos/` holds one subfolder of images per class (`image_folder`: the class
names are the sorted folder names, recorded in WORKDIR/labels.txt); 20% of
each class is held out for evaluation unless --config.data.validation_directory
names a folder of the same layout. `model.weights` is a registered name of
the model (`imagenet` downloads and converts TF-slim's release), a
`.weights.h5` or `.keras` file of the same network, or another workdir: the
backbone is loaded, the classifier is built anew for the folder's classes.

The recipe:

    network             BN-Inception (bn_inception) at the weights' input size;
                        --config.model.kwargs.input_shape=(96,96,3) and
                        .depth_multiplier=0.25 for a small one (the file must
                        be of the same network)
    freeze              the backbone for the first 200 steps (its BN layers in
                        inference mode, on their moving averages; estimated
                        first if they have not caught up), then everything
    optimizer           sgd (default): SGD, momentum 0.9, 0.01 at batch 32,
                        L2 1e-4 on the kernels; adamw: AdamW, 1e-3 at batch 32,
                        decoupled weight decay 0.05 on the kernels
    schedule            linear warm-up from 0 over 50 steps, then cosine decay
                        to 0 at step 600
    loss                cross-entropy with label smoothing 0.1
    augmentation        random crops of 25-100% of the image area (aspect ratio
                        3/4 to 4/3) resized to the input, random left-right flips
    batch               32
    at the end          Algorithm 2's population statistics from 20 batches;
                        final.json gives the accuracy with them and with the
                        moving averages

Every field can be overridden with --config.<field>=value (--print_config
lists them).
"""

import ml_collections
from ml_collections.config_dict import placeholder

from bn_zoo.training import config as config_lib
from bn_zoo.training import config_paths, inputs

VARIANTS = {
    "sgd": "SGD with momentum 0.9, L2 weight decay (the default)",
    "adamw": "AdamW, decoupled weight decay",
}


def get_config(arg=None):
    """The fine-tuning recipe; `arg` picks the optimizer.

    Variants (--config=configs/finetune.py:<variant>):
        sgd      SGD with momentum 0.9, L2 weight decay (the default)
        adamw    AdamW, decoupled weight decay

    Raises:
        ConfigError: `arg` is not one of these.
    """
    optimizer = config_paths.variant(arg, VARIANTS, "configs/finetune.py", "sgd")
    config = config_lib.default_config()
    config.model.name = "bn_inception"
    # None: the builder's default (the weights' network). Set from the command
    # line for a smaller network, e.g. --config.model.kwargs.input_shape=(96,96,3).
    config.model.kwargs = ml_collections.ConfigDict({
        "input_shape": placeholder(tuple),
        "depth_multiplier": placeholder(float),
        "classes": placeholder(int),  # None: the folder's class count.
    })
    config.model.freeze = "backbone"
    config.model.freeze_steps = 200
    config.model.freeze_estimate_batches = 20

    config.data = inputs.default_config("image_folder")
    config.data.validation_split = 0.2
    config.data.random_crop = True
    config.data.random_flip = True
    config.data.crop_area_range = (0.25, 1.0)

    config.seed = 0
    config.global_batch_size = 32
    config.num_train_steps = 600
    config.steps_per_loop = 50
    config.log_every_steps = 50
    config.eval_every_steps = 100
    config.eval_batch_size = 64
    config.checkpoint_every_steps = 100
    config.label_smoothing = 0.1

    config.schedule.name = "cosine"
    config.schedule.warmup_steps = 50
    config.schedule.alpha = 0.0
    # decay_steps None: to the last step (num_train_steps - warmup_steps).

    config.optimizer.reference_batch_size = 32
    if optimizer == "adamw":
        config.optimizer.name = "adamw"
        config.optimizer.base_learning_rate = 1e-3
        config.optimizer.weight_decay = 0.05
        config.optimizer.momentum = 0.0  # Unused by AdamW.
    else:
        config.optimizer.name = "sgd_momentum"
        config.optimizer.base_learning_rate = 0.01
        config.optimizer.momentum = 0.9
        config.optimizer.weight_decay = 1e-4

    config.population_batches = 20
    return config
