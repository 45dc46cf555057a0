"""The trainer's data sources, behind one small interface.

`config.data.name` picks an entry of `INPUTS`; the class provides

    default_config()              the fields of config.data, with defaults
    FIELD_DOCS                    what each of those fields means
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

from bn_zoo.training.errors import ConfigError
from bn_zoo.training.imagenet_input import ImageNetInput
from bn_zoo.training.mnist_inception_input import MNISTInceptionInput
from bn_zoo.training.mnist_input import MNISTInput

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


def field_docs(name):
    """What each field of data source `name`'s `config.data` means."""
    return dict(_input_class(name).FIELD_DOCS)


def check_config(data):
    """Validates a resolved `config.data` (a dict)."""
    _input_class(data["name"]).check_config(data)


def create(data, preprocess=None):
    """The data source of a resolved `config.data`."""
    return _input_class(data.name)(data, preprocess)
