"""MNIST for the trainer (`config.data.name = "mnist"`, Section 4.1)."""

import ml_collections
from ml_collections.config_dict import placeholder

from bn_zoo.training.errors import ConfigError


class MNISTInput:
    """MNIST from TFDS, in memory, in a (seed, step)-determined order
    (`bn_zoo.data.mnist`)."""

    FIELD_DOCS = {
        "name": ("Data source: mnist, mnist_inception, imagenet, image_folder, tfds, a "
                 "registered name or 'package.module:Class' (bn_zoo.training.inputs)."),
        "data_dir": (
            "TFDS data directory holding the prepared mnist (None: $TFDS_DATA_DIR, else "
            "~/tensorflow_datasets). Never downloaded. --data_dir overrides it."),
        "train_split": "TFDS split to train on; slices such as train[:6000] work.",
        "eval_split": "TFDS split to evaluate on.",
    }

    @staticmethod
    def default_config():
        return ml_collections.ConfigDict({
            "name": "mnist",
            "data_dir": placeholder(str),
            "train_split": "train",
            "eval_split": "test",
        })

    @staticmethod
    def check_config(data):
        for field in ("train_split", "eval_split"):
            if not isinstance(data[field], str) or not data[field]:
                raise ConfigError(f"config.data.{field} must be a TFDS split name; "
                                  f"got {data[field]!r}.")
        if data["data_dir"] is not None and not isinstance(data["data_dir"], str):
            raise ConfigError(f"config.data.data_dir must be a path; got {data['data_dir']!r}.")

    def __init__(self, data, preprocess=None):
        from bn_zoo.data import mnist

        self._source = mnist.MNIST(
            data_dir=data.data_dir,
            train_split=data.train_split,
            eval_split=data.eval_split,
            preprocess=self._image_transform(data, preprocess),
        )
        self.num_classes = mnist.NUM_CLASSES
        self.class_names = [str(digit) for digit in range(mnist.NUM_CLASSES)]  # "0".."9"

    def _image_transform(self, data, preprocess):
        """What a batch of uint8 images goes through; subclasses reshape them."""
        return preprocess

    def train_dataset_fn(self, global_batch_size, seed, start_step):
        def fn(input_context=None):
            return self._source.train_dataset(global_batch_size, seed, start_step, input_context)

        return fn

    def eval_dataset_fn(self, global_batch_size):
        def fn(input_context=None):
            return self._source.eval_dataset(global_batch_size, input_context)

        return fn

    def population_dataset(self, global_batch_size, seed):
        return self._source.train_dataset(global_batch_size, seed)

    def probe_examples(self, num_examples):
        return self._source.eval_examples(num_examples)[0]
