"""Representative training images for int8 calibration.

Post-training integer quantization runs the float network on a few batches
of typical inputs, records each activation's range, and derives the int8
scale and zero point of every tensor from it. Those batches come from the
data the model was trained on, as raw pixels in [0, 255] (the served input):

- the MLPs: MNIST's training split (`bn_zoo.data.mnist`, from TFDS, offline),
  a seeded random sample;
- the Inception family: the configured ImageNet pipeline
  (`bn_zoo.data.imagenet`, TFDS or TFRecord shards) on the training split,
  with the evaluation preprocessing (central crop, resize: what a served
  image looks like), its [-1, 1] output mapped back to [0, 255];
- a training workdir: its own `config.data` (MNIST, MNIST for Inception,
  or ImageNet), through the same input classes as the trainer.

Every function here checks that the data is there before returning (so an
export that cannot be calibrated writes nothing), and returns a function
that yields `steps` float32 batches of `batch_size` images.
"""

import numpy as np

from bn_zoo.export import formats


def mnist_batches(steps, batch_size=formats.CALIBRATION_BATCH_SIZE, data_dir=None,
                  split="train", seed=0):
    """`steps` batches of MNIST training digits, `[batch_size, 28, 28, 1]`,
    sampled without replacement (seeded) from `split`.

    Raises:
        DataNotFoundError: MNIST is not prepared under `data_dir`.
    """
    from bn_zoo.data import mnist

    images, _ = mnist.load(split, data_dir)
    count = min(steps * batch_size, len(images))
    order = np.random.default_rng(seed).permutation(len(images))[:count]

    def batches():
        for start in range(0, count, batch_size):
            yield images[np.sort(order[start:start + batch_size])].astype(np.float32)

    return batches


def imagenet_batches(pipeline_config, steps, batch_size=formats.CALIBRATION_BATCH_SIZE):
    """`steps` batches of centrally cropped training images of an ImageNet
    pipeline config (`bn_zoo.data.imagenet.default_config()` fields), as
    pixel values in [0, 255].

    Raises:
        DataNotFoundError, DataError: the data is missing or unreadable
            (`bn_zoo.data.imagenet.validate` on the training split).
    """
    from bn_zoo.data import errors, imagenet

    config = dict(pipeline_config, dtype="float32")
    split = imagenet.settings(config).train_split
    imagenet.validate(config, splits=[split])
    files = imagenet.split_record_files(config, [split])

    def batches():
        dataset = imagenet.build_dataset(config, batch_size, training=False, split=split)
        with errors.named_data_errors(files):  # A damaged shard met here, named.
            for images, _ in dataset.take(steps):
                yield (images.numpy() + 1.0) * 127.5

    return batches


def registered_model_batches(info, image_shape, steps, data_dir=None, data_source="tfds",
                             batch_size=formats.CALIBRATION_BATCH_SIZE):
    """Calibration batches for registered model `info` (a `ModelInfo`):
    MNIST for the MLP family, ImageNet (`data_source`: "tfds" or
    "tfrecord", at `data_dir`) for the Inception family."""
    if info.family == "mlp":
        return mnist_batches(steps, batch_size, data_dir)
    from bn_zoo.data import imagenet

    config = imagenet.default_config().to_dict()
    config.update(source=data_source, data_dir=data_dir, image_size=int(image_shape[0]),
                  num_classes=info.num_classes, distortion_strength=0.0)
    return imagenet_batches(config, steps, batch_size)


def workdir_batches(config, steps, batch_size=formats.CALIBRATION_BATCH_SIZE, seed=0):
    """Calibration batches from a training run's config (its config.json as
    a dict, or the resolved `ConfigDict`): its `config.data`, through the
    trainer's own input classes (ImageNet: `bn_zoo.data.imagenet`)."""
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if config["data"]["name"] == "imagenet":
        from bn_zoo.data import imagenet

        return imagenet_batches(imagenet.pipeline_config(config["data"]), steps, batch_size)
    from bn_zoo.training import config as config_lib
    from bn_zoo.training import inputs

    data = config_lib.resolve(config).data
    source = inputs.create(data, preprocess=None)  # Loads now: missing data fails here.

    def batches():
        dataset = source.population_dataset(batch_size, seed)
        with inputs.named_data_errors(source):
            for images, _ in dataset.take(steps):
                yield np.asarray(images, np.float32)

    return batches
