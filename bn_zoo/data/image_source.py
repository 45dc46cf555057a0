"""What the image-file data sources share: batches in a (seed, step) order,
split among replicas, decoded with every failure named, augmented.

`ImageSource` is the base of `image_folder` (`bn_zoo.data.image_folder`) and
`tfds` (`bn_zoo.data.tfds_source`). A subclass says which examples make the
global batch of each training step (`_train_batches`: a pure function of
`(seed, step)`) and which make the evaluation batches (`_eval_batches`,
padded to whole global batches with examples of weight 0); this class does
the rest, the same way for both:

- **Replicas.** Every input pipeline (one per worker under
  `distribute_datasets_from_function`) takes its contiguous slice of each
  global batch and splits it into per-replica batches, so the replicas of
  one step together see the global batch of that step, whatever the number
  of workers and replicas (as `bn_zoo.data.mnist`).
- **Decoding.** Each image is read, decoded (`bn_zoo.data.images`) and cut to
  the model's input in parallel, in order. A file that cannot be read or
  decoded stops the pipeline with a `DataError` naming it (through
  `bn_zoo.data.errors`; a raw `OpError` never names the file).
- **Augmentation** (`random_crop`, `random_flip` fields, off by default) is
  drawn from the seed `fold_in((seed, 1), position)`, position = step ·
  global batch + index in the batch: the same for the same example of the
  same step, in an uninterrupted or a resumed run.
- **Scaling.** Batches of float32 pixel values in [0, 255] go through the
  trainer's `preprocess` (the model's `preprocess_input` mode).
"""

import tensorflow as tf

from bn_zoo.data import errors, images
from bn_zoo.data.tfrecords import DataError

# The augmentation fields of config.data, with defaults (all off).
AUGMENTATION_DEFAULTS = {
    "random_crop": False,
    "random_flip": False,
    "crop_area_range": (0.08, 1.0),
    "crop_aspect_ratio_range": (3 / 4, 4 / 3),
}
AUGMENTATION_DOCS = {
    "random_crop": (
        "Training augmentation: a random crop covering a fraction of the image area in "
        "crop_area_range with width/height in crop_aspect_ratio_range, resized to the "
        "model's input (Inception's random-size crop). False: the evaluation crop of the "
        "weights' data config. Drawn from (seed, step): exact across a resume."),
    "random_flip": "Training augmentation: flip left-right with probability 1/2.",
    "crop_area_range": "(min, max) fraction of the image area random_crop keeps, in (0, 1].",
    "crop_aspect_ratio_range": "(min, max) width/height of random_crop's window.",
}
_AUGMENTATION_SALT = 1


def check_augmentation(data):
    """Raises ValueError naming the augmentation field that is wrong."""
    for field in ("random_crop", "random_flip"):
        if not isinstance(data[field], bool):
            raise ValueError(f"config.data.{field} must be True or False; got {data[field]!r}.")
    for field, low, high in (("crop_area_range", 0.0, 1.0),
                             ("crop_aspect_ratio_range", 1e-3, 1e3)):
        value = data[field]
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                or not low < value[0] <= value[1] <= high):
            raise ValueError(f"config.data.{field} must be (min, max) with {low} < min <= max "
                             f"<= {high}; got {value!r}.")


def check_seed_field(data, field):
    value = data[field]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"config.data.{field} must be an integer >= 0; got {value!r}.")


class Replicas:
    """How a global batch splits among the input pipelines and replicas.

    Raises:
        ValueError: a batch size that is not a positive int, or that does
            not divide evenly among the replicas.
    """

    def __init__(self, global_batch_size, input_context=None):
        if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int) \
                or global_batch_size < 1:
            raise ValueError(
                f"The global batch size must be a positive integer; got {global_batch_size!r}.")
        self.global_batch_size = global_batch_size
        if input_context is None:
            pipelines, pipeline_id, replicas = 1, 0, 1
        else:
            pipelines = input_context.num_input_pipelines
            pipeline_id = input_context.input_pipeline_id
            replicas = input_context.num_replicas_in_sync
        if global_batch_size % replicas or replicas % pipelines:
            raise ValueError(
                f"A global batch of {global_batch_size} does not split evenly among "
                f"{replicas} replicas in {pipelines} input pipelines. Use a global batch "
                f"size that is a multiple of {replicas}.")
        self.local = global_batch_size // pipelines  # Examples of one pipeline per step.
        self.start = pipeline_id * self.local
        self.per_replica = global_batch_size // replicas

    def elements(self, global_batches):
        """Global batches (dicts of `[B]` tensors, and a scalar `step` for
        training) -> this pipeline's examples, one by one, in order; training
        examples get their `position`, step · B + index in the global batch."""
        start, local, size = self.start, self.local, self.global_batch_size

        def mine(batch):
            part = {k: v[start:start + local] for k, v in batch.items() if k != "step"}
            if "step" in batch:
                part["position"] = (batch["step"] * size + start
                                    + tf.range(local, dtype=tf.int64))
            return part

        return global_batches.map(mine).unbatch()


def _padding(element):
    return element["weight"] <= 0 if "weight" in element else tf.constant(False)


class ImageSource:
    """Base of the data sources that read encoded images (see the module
    docstring). Subclasses set `num_classes`, `class_names`, and define
    `num_train_examples`, `num_eval_examples`, `_train_batches`,
    `_eval_batches`, `_read` and `_describe`.

    Args:
        data: The resolved `config.data` (with the augmentation fields).
        preprocess: Maps a float32 batch of [0, 255] pixels to the model's
            input; None keeps the pixels.
        model_input: A `bn_zoo.data.sources.ModelInput`: the size images are
            cut to and how.
    """

    def __init__(self, data, preprocess=None, model_input=None):
        if model_input is None:
            raise ValueError(
                f"The {data.name!r} data source needs the model's input (a "
                "bn_zoo.data.sources.ModelInput with its image shape): the trainer passes "
                "it; pass model_input=ModelInput((height, width, channels)) yourself.")
        self.model_input = model_input
        self._preprocess = preprocess
        self._augmentation = {
            "random_crop": bool(data.random_crop),
            "random_flip": bool(data.random_flip),
            "area_range": tuple(data.crop_area_range),
            "aspect_ratio_range": tuple(data.crop_aspect_ratio_range),
        }

    # ------------------------------------------------ for subclasses
    def _read(self, source):
        """A scalar string tensor of `source` -> the encoded image bytes."""
        raise NotImplementedError

    def _describe(self, where):
        """A scalar string tensor naming the example (`where`) in messages."""
        return where

    def _train_batches(self, global_batch_size, seed, start_step):
        raise NotImplementedError

    def _eval_batches(self, global_batch_size):
        raise NotImplementedError

    def _too_few(self, count, global_batch_size):
        return DataError(f"{count} training examples, fewer than one global batch of "
                         f"{global_batch_size}.")

    def steps_per_epoch(self, global_batch_size):
        """Global batches per pass over the training examples (the last
        `N mod B` of each epoch's order are left out).

        Raises:
            DataError: fewer training examples than one global batch.
        """
        steps = self.num_train_examples // global_batch_size
        if steps < 1:
            raise self._too_few(self.num_train_examples, global_batch_size)
        return steps

    # ------------------------------------------------ pipelines
    def _transform(self, training, seed=0):
        mi = self.model_input
        crop = dict(crop_fraction=mi.crop_fraction, crop_mode=mi.crop_mode,
                    interpolation=mi.interpolation)
        if not training:
            return lambda image, element: images.crop_and_resize(image, mi.image_size, **crop)
        augmentation = self._augmentation

        base = tf.constant([seed, _AUGMENTATION_SALT], tf.int64)

        def train(image, element):
            example_seed = tf.random.experimental.stateless_fold_in(base, element["position"])
            return images.augment(image, mi.image_size, example_seed, **augmentation, **crop)

        return train

    def _decoded(self, elements, transform, keys):
        """Examples -> (image, *element[keys]); an example that does not read
        or decode stops the pipeline with a DataError naming it."""
        height, width = self.model_input.image_size
        channels = self.model_input.channels
        zeros = tf.zeros([height, width, channels], tf.float32)

        def load(element):
            def real():
                image = images.decode(self._read(element["source"]), channels)
                return tf.ensure_shape(transform(image, element), [height, width, channels])

            return tf.cond(_padding(element), lambda: zeros, real), tf.constant(True)

        def one(element):
            good = tf.data.Dataset.from_tensors(element).map(load).ignore_errors()
            bad = tf.data.Dataset.from_tensors((zeros, tf.constant(False)))
            return good.concatenate(bad).take(1).map(
                lambda image, ok: (image, ok, self._describe(element["where"]),
                                   *(element[k] for k in keys)))

        def check(image, ok, where, *rest):
            named = errors.assert_named(
                ok, where, ": cannot be read or decoded as an image (JPEG, PNG, GIF or "
                "BMP). It is damaged, truncated or gone: re-save or replace it, or remove "
                "it (the data order follows the list of files, so a run resumed after that "
                "is not exact).")
            with tf.control_dependencies([named]):
                return (tf.identity(image), *rest)

        decoded = elements.interleave(
            one, cycle_length=16, block_length=1, num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True)
        return decoded.map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def _batched(self, decoded, replicas):
        preprocess = self._preprocess

        def scale(images_, *rest):
            if preprocess is not None:
                images_ = preprocess(images_)
            return (images_, *rest)

        dataset = decoded.batch(replicas.per_replica, drop_remainder=True).map(scale)
        options = tf.data.Options()
        options.deterministic = True
        return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)

    def train_dataset(self, global_batch_size, seed, start_step=0, input_context=None):
        """Endless training batches `(images, labels)` from global step
        `start_step` on: per-replica batches with an `input_context`, global
        batches without. Batch s is the same in every run with this seed.

        Raises:
            DataError: fewer training examples than one global batch.
            ValueError: a bad batch size or `start_step`.
        """
        if isinstance(start_step, bool) or int(start_step) != start_step or start_step < 0:
            raise ValueError(f"`start_step` must be an integer >= 0; got {start_step!r}.")
        replicas = Replicas(global_batch_size, input_context)
        self.steps_per_epoch(global_batch_size)
        batches = self._train_batches(global_batch_size, int(seed), int(start_step))
        decoded = self._decoded(replicas.elements(batches), self._transform(True, int(seed)),
                                ("label",))
        return self._batched(decoded, replicas)

    def eval_dataset(self, global_batch_size, input_context=None):
        """The evaluation examples once, `(images, labels, weights)`, padded
        to whole global batches with examples of weight 0."""
        replicas = Replicas(global_batch_size, input_context)
        decoded = self._decoded(replicas.elements(self._eval_batches(global_batch_size)),
                                self._transform(False), ("label", "weight"))
        return self._batched(decoded, replicas)

    # ------------------------------------------------ the trainer's interface
    def train_dataset_fn(self, global_batch_size, seed, start_step):
        self.steps_per_epoch(global_batch_size)  # A DataError now, not on a worker.

        def fn(input_context=None):
            return self.train_dataset(global_batch_size, seed, start_step, input_context)

        return fn

    def eval_dataset_fn(self, global_batch_size):
        def fn(input_context=None):
            return self.eval_dataset(global_batch_size, input_context)

        return fn

    def population_dataset(self, global_batch_size, seed):
        return self.train_dataset(global_batch_size, seed)

    def probe_examples(self, num_examples):
        """The first `num_examples` evaluation images, preprocessed.

        Raises:
            DataError: there are fewer evaluation examples.
        """
        if not 0 < num_examples <= self.num_eval_examples:
            raise DataError(
                f"config.probe.num_examples={num_examples} is more than the "
                f"{self.num_eval_examples} evaluation examples; use at most that many.")
        with errors.named_data_errors(self):  # Names a damaged record file too.
            return next(iter(self.eval_dataset(num_examples)))[0]
