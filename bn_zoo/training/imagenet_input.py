"""ImageNet as a data source of the trainer (`config.data.name = "imagenet"`).

A thin adapter from the trainer's input interface (`bn_zoo.training.inputs`)
to `bn_zoo.data.imagenet`, the input pipeline of Section 4.2: one pipeline per
worker through `strategy.distribute_datasets_from_function`, sharded by file,
interleaved, shuffled in a large buffer, decoded and preprocessed in parallel,
batched at the per-replica size. The source is TensorFlow Datasets
(`imagenet2012`, prepared from the manual download) or TFRecord shards in the
standard layout (`data.source = "tfrecord"`).

Every field of `bn_zoo.data.imagenet.default_config()` is a field of
`config.data`; `distortion_strength` left at None comes from the model's recipe
(the BN-x networks "reduce the photometric distortions", Section 4.2.1).

The data is checked (`imagenet.validate`) when the source is created, which
the trainer does before it writes anything to the workdir: a missing or empty
directory, a corrupt shard, an image that does not decode or a label out of
range is one `DataError` naming the file and the fix.

The pipeline scales images to [-1, 1] itself, which is the registry's
"inception" preprocessing mode, so the trainer's `preprocess` is not applied.
"""

import ml_collections
import tensorflow as tf
from ml_collections.config_dict import placeholder

from bn_zoo.data import imagenet
from bn_zoo.training.errors import ConfigError

# Fields of config.data that are not input-pipeline settings.
_OWN_FIELDS = ("name", "validate_num_files", "validate_num_records")
# Resuming at step s re-seeds the pipeline with seed · _RESUME_STRIDE + s, so a
# resumed run reads a fresh order instead of replaying the first batches.
_RESUME_STRIDE = 1_000_003


def _pipeline_config(data):
    """The `bn_zoo.data.imagenet` config of a resolved `config.data`."""
    values = dict(data.to_dict() if hasattr(data, "to_dict") else data)
    for field in _OWN_FIELDS:
        values.pop(field, None)
    values["area_range"] = tuple(values["area_range"])
    values["aspect_ratio_range"] = tuple(values["aspect_ratio_range"])
    return values


class ImageNetInput:
    """ImageNet (TFDS or TFRecord shards), top-1 and top-5 evaluation on the
    validation split.

    Args:
        data: The resolved `config.data`.
        preprocess: Unused: the pipeline already scales to [-1, 1] (the
            "inception" mode of `bn_zoo.models.preprocess_input`).
    """

    FIELD_DOCS = {
        "name": "Data source: mnist, mnist_inception or imagenet (bn_zoo.training.inputs).",
        "source": "tfds (imagenet2012 prepared by TensorFlow Datasets) or tfrecord (shards).",
        "data_dir": (
            "tfds: the TFDS data directory (None: $TFDS_DATA_DIR, else "
            "~/tensorflow_datasets). tfrecord: the shard directory (required). Never "
            "downloaded. --data_dir overrides it."),
        "tfds_name": "TFDS builder name.",
        "train_split": "Split to train on; tfds also accepts slices such as train[:10%].",
        "eval_split": "Split to evaluate on.",
        "num_classes": "Classes; a label outside [0, num_classes) after label_offset is an error.",
        "label_offset": (
            "Subtracted from stored labels. None: 1 for tfrecord (the standard layout "
            "stores 1..1000), 0 for tfds."),
        "image_size": "Output height and width of the crops.",
        "distortion_strength": (
            "Scale of the photometric distortions (0: none, 1: Inception's). None: the "
            "recipe's distortion_strength (smaller for BN-x, Section 4.2.1)."),
        "area_range": "Fraction of the image area the random training crop keeps.",
        "aspect_ratio_range": "Width/height range of the random training crop.",
        "central_fraction": "Fraction of each side the evaluation crop keeps.",
        "dtype": "Dtype of the images: float32, bfloat16 or float16.",
        "shuffle_buffer_size": (
            "Records per input pipeline in the shuffle buffer (1: each shard read in "
            "order). None: from the recipe's shuffle_thoroughly (Section 4.2.1): "
            "10,000 if True, else 1."),
        "cycle_length": "Files one input pipeline reads at the same time (interleave).",
        "eval_drop_remainder": "Drop the last partial evaluation batch (set True on TPU).",
        "seed": "Seed of the data order and augmentation. None: the trainer's config.seed.",
        "validate_num_files": (
            "Preflight check before training: how many shards of each split it reads "
            "(0: all)."),
        "validate_num_records": "Preflight check: how many records of each checked shard (0: all).",
    }

    @staticmethod
    def default_config():
        config = imagenet.default_config().to_dict()
        config.update({
            "data_dir": placeholder(str),
            "label_offset": placeholder(int),
            "seed": placeholder(int),
            "distortion_strength": placeholder(float),
            "shuffle_buffer_size": placeholder(int),
        })
        return ml_collections.ConfigDict({
            "name": "imagenet",
            **config,
            "validate_num_files": 0,
            "validate_num_records": 1,
        })

    @staticmethod
    def check_config(data):
        for field in ("validate_num_files", "validate_num_records"):
            value = data[field]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"config.data.{field} must be an integer >= 0 (0: all); "
                                  f"got {value!r}.")
        if data["distortion_strength"] is None:
            raise ConfigError("config.data.distortion_strength is not set; set it in [0, 1].")
        try:
            imagenet.settings(_pipeline_config(data))
        except ValueError as error:
            raise ConfigError(f"config.data: {error}") from error

    def __init__(self, data, preprocess=None):
        del preprocess  # The pipeline scales to [-1, 1] itself.
        self._config = _pipeline_config(data)
        self.num_classes = data.num_classes
        imagenet.validate(
            self._config,
            num_files=data.validate_num_files or None,
            num_records=data.validate_num_records or None,
        )

    def _with_seed(self, seed):
        config = dict(self._config)
        if config["seed"] is None:
            config["seed"] = seed
        return config

    def train_dataset_fn(self, global_batch_size, seed, start_step):
        """Endless augmented training batches. tf.data cannot save the position
        of a shuffled, interleaved stream, so a run resumed at `start_step`
        reads a new order, seeded by `start_step`."""
        config = self._with_seed(seed)
        config["seed"] = (config["seed"] * _RESUME_STRIDE + int(start_step)) % (2**31 - 1)
        return imagenet.dataset_fn(config, global_batch_size, training=True)

    def eval_dataset_fn(self, global_batch_size):
        """The validation split once, central crops; the last batch may be
        partial (and a replica's share empty), which the weighted sums allow."""
        return imagenet.dataset_fn(self._config, global_batch_size, training=False)

    def population_dataset(self, global_batch_size, seed):
        """Global training batches for Algorithm 2's population statistics."""
        return imagenet.build_dataset(self._with_seed(seed), global_batch_size, training=True)

    def probe_examples(self, num_examples):
        """The first `num_examples` validation images, preprocessed."""
        dataset = imagenet.build_dataset(self._config, num_examples, training=False)
        images = next(iter(dataset))[0]
        if images.shape[0] < num_examples:
            raise ConfigError(
                f"config.probe.num_examples={num_examples} is more than the "
                f"{images.shape[0]} validation images; use at most that many.")
        return tf.convert_to_tensor(images)
