"""Top-1 and top-5 accuracy on ImageNet's validation split, alone or as an ensemble.

    from bn_zoo import evaluation

    data = dict(source="tfrecord", data_dir="/data/imagenet/tfrecords")
    results = evaluation.evaluate(
        [evaluation.registered("bn_inception", "imagenet")], data, protocol=144)
    print(results.table())

The images of the evaluation split (`bn_zoo.data.imagenet.eval_examples`, in
its deterministic order) are decoded with `tf.io.decode_jpeg(channels=3)` and
cut into the crops of the protocol (`bn_zoo.evaluation.crops`) in the
`tf.data` pipeline, once for every member. The crop fraction, protocol 1's
crop mode and the resize method are the members' data config's
(`Member.data_config`, from the registered weights) when they share one,
else the paper's (central 87.5%, bilinear); arguments override both. Each
member scales the same 0-255 crops its own way (`preprocess_input` with its
mode) and outputs a softmax over the classes; an image's probabilities are
the mean over its crops, and the ensemble's the mean over the members. A label is in the top k when fewer
than k classes have a higher probability (`tf.math.in_top_k`, through
`keras.metrics.SparseTopKCategoricalAccuracy`).

A member with one class more than the data (TF-slim's 1001 classes for
ImageNet's 1000) treats its class 0 as "background": that column is dropped
and the other probabilities renormalized to sum to 1, which is the softmax of
the other classes' logits. Any other class count than the data's is refused.
"""

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from bn_zoo.data import errors as data_errors
from bn_zoo.data import imagenet
from bn_zoo.data.tfrecords import DataError
from bn_zoo.evaluation import crops as crops_lib
from bn_zoo.evaluation.members import Member, common_input_size
from bn_zoo.models.preprocessing import preprocess_input
from bn_zoo.training import console

TOP_K = (1, 5)
# How far softmax outputs may be from a probability distribution (bfloat16
# models round their sums).
_PROBABILITY_TOLERANCE = 1e-2


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """Top-1 and top-5 accuracy (fractions in [0, 1]) of one model or ensemble."""

    name: str
    top1: float
    top5: float


@dataclasses.dataclass(frozen=True)
class Results:
    """What `evaluate` measured.

    Attributes:
        protocol: Crops per image (1, 10 or 144).
        image_size: Side S of the crops.
        crops: The crops in words (`crops.describe`), e.g. "1 crop (central
            87.5%)".
        num_images: Images evaluated.
        data: The data read, e.g. "imagenet2012 validation".
        members: An `Accuracy` per member, in the order given.
        ensemble: The `Accuracy` of the mean of the members' probabilities;
            None for a single member.
        labels: With `keep_probabilities`, the `[num_images]` int32 labels in
            evaluation order; else None.
        probabilities: With `keep_probabilities`, per member the
            `[num_images, num_classes]` float32 probabilities averaged over
            the crops (background column dropped); else None.
        ensemble_probabilities: With `keep_probabilities` and more than one
            member, their mean; else None.
    """

    protocol: int
    image_size: int
    num_images: int
    data: str
    members: tuple
    ensemble: Accuracy = None
    labels: np.ndarray = dataclasses.field(default=None, repr=False)
    probabilities: tuple = dataclasses.field(default=None, repr=False)
    ensemble_probabilities: np.ndarray = dataclasses.field(default=None, repr=False)
    crops: str = None

    @property
    def rows(self):
        """The members' `Accuracy`, then the ensemble's if there is one."""
        return self.members + ((self.ensemble,) if self.ensemble else ())

    def to_dict(self):
        """A JSON-compatible summary (accuracies as fractions, no arrays)."""
        def row(accuracy):
            return {"name": accuracy.name, "top1": accuracy.top1, "top5": accuracy.top5,
                    "top1_error": 1.0 - accuracy.top1, "top5_error": 1.0 - accuracy.top5}

        return {
            "protocol": self.protocol,
            "crops": self.crops or crops_lib.PROTOCOL_NAMES[self.protocol],
            "image_size": self.image_size,
            "num_images": self.num_images,
            "data": self.data,
            "models": [row(a) for a in self.members],
            "ensemble": row(self.ensemble) if self.ensemble else None,
        }

    def table(self):
        """The results as a text table, one row per model and the ensemble."""
        width = max(len("model"), *(len(a.name) for a in self.rows))
        lines = [f"{self.crops or crops_lib.PROTOCOL_NAMES[self.protocol]}, {self.image_size}x"
                 f"{self.image_size}, {self.num_images} images of {self.data}",
                 f"{'model':<{width}}   top-1    top-5  top-1 err  top-5 err"]
        for a in self.rows:
            lines.append(f"{a.name:<{width}}  {a.top1:6.2%}  {a.top5:6.2%}  "
                         f"{1 - a.top1:8.2%}  {1 - a.top5:8.2%}")
        return "\n".join(lines)


def background_columns(member, num_classes):
    """How many leading output columns of `member` to drop: 0 when it has
    `num_classes` outputs, 1 when it has `num_classes + 1` (class 0 is
    background, as in TF-slim's 1001-class models).

    Raises:
        ValueError: any other number of outputs, naming both numbers.
    """
    outputs = member.num_outputs
    if outputs == num_classes:
        return 0
    if outputs == num_classes + 1:
        return 1
    raise ValueError(
        f"{member.name!r} outputs {outputs} classes but the data has {num_classes} "
        f"(num_classes). Evaluate a model with {num_classes} classes (or "
        f"{num_classes + 1}, class 0 being background as in TF-slim's 1001-class "
        "models), or set num_classes to the data's number of classes.")


class _Predictor:
    """A member's per-crop probabilities `[crops, num_classes]` (numpy float32)
    from 0-255 crops `[crops, S, S, 3]`."""

    def __init__(self, member, background):
        self.member, self.background = member, background

    def __call__(self, crops):
        # Keras' cached predict function: traced once per model (reduce_retracing),
        # XLA-compiled where jit_compile='auto' chooses it (on GPUs).
        y = self.member.model.predict_on_batch(
            preprocess_input(crops, self.member.preprocessing))
        y = np.asarray(y, np.float32)
        if not np.isfinite(y).all():
            raise ValueError(
                f"{self.member.name!r} output NaN or Inf: its weights are not finite "
                "(a diverged run?).")
        if self.member.outputs == "logits":
            y = y[:, self.background:].astype(np.float64)
            y = np.exp(y - y.max(axis=1, keepdims=True))
        else:
            sums = y.sum(axis=1)
            if y.min() < -1e-6 or np.abs(sums - 1.0).max() > _PROBABILITY_TOLERANCE:
                raise ValueError(
                    f"{self.member.name!r} does not output probabilities (values in "
                    f"[{y.min():.3g}, {y.max():.3g}], rows summing to {sums.min():.4g} to "
                    f"{sums.max():.4g}). Build it with classifier_activation='softmax', "
                    "or evaluate it as Member(..., outputs='logits').")
            if not self.background:
                return y
            y = y[:, self.background:]
        return (y / y.sum(axis=1, keepdims=True)).astype(np.float32)


def crop_batches(examples, protocol, image_size, images_per_batch, **crop):
    """`(crops, labels)` batches from `(jpeg_bytes, label)` examples: crops
    float32 `[b, protocol, S, S, 3]` in [0, 255], labels int32 `[b]`;
    `crop`: `crop_fraction`, `crop_mode`, `interpolation` of `crop_image`."""
    def prepare(image, label):
        image = tf.io.decode_jpeg(image, channels=3)
        return crops_lib.crop_image(image, protocol, image_size, **crop), label

    return (examples.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(images_per_batch)
            .prefetch(tf.data.AUTOTUNE))


def _check_count(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; received {value!r}.")


_CROP_FIELDS = {"crop_fraction": crops_lib.CENTRAL_FRACTION, "crop_mode": crops_lib.CROP_MODE,
                "interpolation": crops_lib.INTERPOLATION}


def crop_settings(members, **given):
    """{crop_fraction, crop_mode, interpolation} of an evaluation: each the
    value given, else the one every member's data config shares (members
    without one do not count), else the paper's (0.875, "central_fraction",
    "bilinear")."""
    settings = {}
    for field, default in _CROP_FIELDS.items():
        if given.get(field) is not None:
            settings[field] = given[field]
            continue
        values = {getattr(m.data_config, field) for m in members if m.data_config is not None}
        settings[field] = values.pop() if len(values) == 1 else default
    crops_lib.check_crop(**settings)
    return settings


def _common_config_size(members):
    """The input height the members' data configs share, or None."""
    sizes = {m.data_config.input_shape[0] for m in members
             if m.data_config is not None and m.data_config.input_shape is not None}
    return sizes.pop() if len(sizes) == 1 else None


def _describe(s):
    where = s.tfds_name if s.source == "tfds" else s.data_dir
    return f"{where} {s.eval_split}"


class _Progress:
    """The progress lines of `evaluate`: after the first batch (whose time
    includes tracing), then every `every` seconds, and at the end."""

    def __init__(self, progress, total, every=30.0):
        if progress is True:
            self._say = lambda line: print(line, flush=True)
        else:
            self._say = progress or None
        self._total = total
        self._every = every
        self._start = time.perf_counter()
        self._last = None

    def say(self, line):
        if self._say is not None:
            self._say(line)

    def update(self, seen, top, final=False):
        now = time.perf_counter()
        if self._say is None or (self._last is not None and not final
                                 and now - self._last < self._every):
            return
        first = self._last is None
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        total = f"/{self._total:,}" if self._total else ""
        share = f" ({100 * seen / self._total:.0f}%)" if self._total else ""
        rate = seen / elapsed
        left = ""
        if self._total and rate > 0 and seen < self._total and not first:
            left = f", {console.duration((self._total - seen) / rate)} left"
        accuracy = ", ".join(f"top-{k} {100 * a:.2f}%" for k, a in zip(TOP_K, top))
        when = "first batch, tracing included" if first and not final else "so far"
        if final:
            when = "done"
        self.say(f"{seen:,}{total} images{share}: {accuracy} ({when}); "
                 f"{rate:.1f} images/s{left}")


def evaluate(members, data_config, protocol=1, batch_size=128, num_examples=None,
             image_size=None, progress=True, keep_probabilities=False, crop_fraction=None,
             crop_mode=None, interpolation=None):
    """Top-1 / top-5 accuracy of each member and of their ensemble.

    Args:
        members: `Member`s (see `bn_zoo.evaluation.members`); more than one
            are also evaluated as an ensemble, the mean of their probabilities.
        data_config: A `bn_zoo.data.imagenet` input config (dict or
            ConfigDict): `source` ("tfds" or "tfrecord"), `data_dir`,
            `tfds_name`, `eval_split` (the split evaluated), `num_classes`,
            `label_offset`. Its training fields (image_size, distortions,
            dtype) are not used.
        protocol: Crops per image: 1, 10 or 144 (`bn_zoo.evaluation.crops`).
        batch_size: Crops per model call, rounded down to whole images (at
            least one image): 128 runs 128 images of 1 crop, 12 of 10 crops,
            1 of 144.
        num_examples: Evaluate only the first this many images (None: all).
        image_size: Crop side S; default the members' input size (which
            they must share), else, for models without a fixed one, the
            input size their data configs share.
        progress: True: print a header and progress lines (images done, top-1
            and top-5 so far of the last member or the ensemble, speed, time
            left: after the first batch, then every 30 s) to stdout; False:
            nothing; a callable: called with each line instead (the
            `trainers.evaluate` command passes absl's `logging.info`).
        keep_probabilities: Also return the labels and the per-image
            probabilities (`Results.labels`, `.probabilities`, ...).
        crop_fraction, crop_mode, interpolation: The crops' (`crop_image`);
            None: the members' data config's if they share it, else the
            paper's, 0.875, "central_fraction", "bilinear" (`crop_settings`).

    Returns:
        `Results`.

    Raises:
        ValueError: bad arguments; a member whose class count is neither
            num_classes nor num_classes + 1, members of different input
            sizes, outputs that are not probabilities or not finite.
        DataNotFoundError / DataError: missing or unreadable data (checked
            before any model runs; a bad record or a damaged file met later
            stops the run, naming it).
    """
    members = tuple(members)
    if not members or not all(isinstance(m, Member) for m in members):
        raise ValueError(
            "`members` must be a non-empty sequence of bn_zoo.evaluation.Member; "
            f"received {members!r}.")
    crops_lib.check_protocol(protocol)
    _check_count("batch_size", batch_size)
    _check_count("num_examples", num_examples, allow_none=True)
    s = imagenet.settings(data_config)
    crop = crop_settings(members, crop_fraction=crop_fraction, crop_mode=crop_mode,
                         interpolation=interpolation)
    if image_size is None and all(m.input_size is None for m in members):
        image_size = _common_config_size(members)
    size = common_input_size(members, image_size)
    described = crops_lib.describe(protocol, **crop)
    predictors = [_Predictor(m, background_columns(m, s.num_classes)) for m in members]
    imagenet.validate(data_config, splits=[s.eval_split])

    examples = imagenet.eval_examples(data_config)
    if num_examples is not None:
        examples = examples.take(num_examples)
    known = int(examples.cardinality())
    images_per_batch = max(1, batch_size // protocol)
    dataset = crop_batches(examples, protocol, size, images_per_batch, **crop)
    ensemble = len(members) > 1
    names = [m.name for m in members] + (["ensemble"] if ensemble else [])
    metrics = [[keras.metrics.SparseTopKCategoricalAccuracy(k=k) for k in TOP_K]
               for _ in names]
    kept = [[] for _ in range(len(names) + 1)]
    report = _Progress(progress, known if known >= 0 else num_examples)
    report.say(f"Evaluating {len(members)} model(s){' and their ensemble' if ensemble else ''} "
               f"on {_describe(s)}: {described} at {size}x{size}, "
               f"{images_per_batch} image(s) ({images_per_batch * protocol} crops) per "
               "model call.")
    seen, iterator = 0, iter(dataset)
    while True:
        try:
            batch_crops, labels = next(iterator)
        except StopIteration:
            break
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
            named = data_errors.named_data_error(
                error, lambda: imagenet.split_record_files(data_config, [s.eval_split]))
            if named is not None:
                raise named from None
            detail = str(getattr(error, "message", error)).strip()[:500]
            raise DataError(
                f"Reading {_describe(s)} failed after {seen} images: {detail} "
                "bn_zoo.data.imagenet.validate(config, num_files=None, num_records=None) "
                "names the culprit record.") from None
        count = int(labels.shape[0])
        flat = tf.reshape(batch_crops, [-1, size, size, 3])
        probabilities = [p(flat).reshape(count, protocol, -1).mean(axis=1) for p in predictors]
        if ensemble:
            probabilities.append(np.mean(probabilities, axis=0))
        for row, probs in zip(metrics, probabilities):
            for metric in row:
                metric.update_state(labels, probs)
        if keep_probabilities:
            for store, value in zip(kept, [labels.numpy(), *probabilities]):
                store.append(value)
        seen += count
        report.update(seen, [float(m.result()) for m in metrics[-1]])
    report.update(seen, [float(m.result()) for m in metrics[-1]], final=True)
    if seen == 0:
        raise DataError(f"{_describe(s)} has no images to evaluate.")
    accuracies = [Accuracy(name, *(float(m.result()) for m in row))
                  for name, row in zip(names, metrics)]
    arrays = [np.concatenate(store) for store in kept] if keep_probabilities else None
    return Results(
        protocol=protocol, image_size=size, num_images=seen, data=_describe(s),
        members=tuple(accuracies[:len(members)]),
        ensemble=accuracies[-1] if ensemble else None,
        labels=arrays[0] if arrays else None,
        probabilities=tuple(arrays[1:len(members) + 1]) if arrays else None,
        ensemble_probabilities=arrays[-1] if arrays and ensemble else None,
        crops=described)
