"""The trainer's data sources, behind one small interface.

`config.data.name` picks an entry of `INPUTS`; the class provides

    default_config()              the fields of config.data, with defaults
    check_config(data)            raises ConfigError on a bad value
    Input(data, preprocess)       loads or validates the data (DataError if missing)
    .num_classes
    .train_dataset_fn(global_batch_size, seed, start_step)
        -> fn(input_context) for `distribute_datasets_from_function`: endless
           per-replica (images, labels), starting at global step `start_step`
    .eval_dataset_fn(global_batch_size)
        -> fn(input_context): the evaluation split once, per-replica
           (images, labels) or (images, labels, weights)
    .population_dataset(global_batch_size, seed)
        -> global training batches (images, labels) for Algorithm 2
    .probe_examples(num_examples) -> a fixed batch of evaluation images

`preprocess` maps a batch of raw uint8 images to the model's input (the
registry's `preprocess_input` mode). A new data set (e.g. ImageNet, issue 5)
is one more class here.
"""

import ml_collections
from ml_collections.config_dict import placeholder

from bn_zoo.training.errors import ConfigError


class MNISTInput:
    """MNIST from TFDS, in memory, in a (seed, step)-determined order
    (`bn_zoo.data.mnist`)."""

    @staticmethod
    def default_config():
        return ml_collections.ConfigDict({
            "name": "mnist",
            "data_dir": placeholder(str),  # None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
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
            preprocess=preprocess,
        )
        self.num_classes = mnist.NUM_CLASSES

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


from bn_zoo.training.imagenet_input import ImageNetInput  # noqa: E402
from bn_zoo.training.mnist_inception_input import MNISTInceptionInput  # noqa: E402

INPUTS = {
    "mnist": MNISTInput,
    "imagenet": ImageNetInput,  # Section 4.2 (issue 5).
    "mnist_inception": MNISTInceptionInput,  # The CPU-scale Figure 3 ablation.
}


def _input_class(name):
    if name not in INPUTS:
        raise ConfigError(f"Unknown data source {name!r}. Known: {', '.join(sorted(INPUTS))}.")
    return INPUTS[name]


def default_config(name):
    """The `config.data` fields of data source `name`, with defaults."""
    return _input_class(name).default_config()


def check_config(data):
    """Validates a resolved `config.data` (a dict)."""
    _input_class(data["name"]).check_config(data)


def create(data, preprocess=None):
    """The data source of a resolved `config.data`."""
    return _input_class(data.name)(data, preprocess)
