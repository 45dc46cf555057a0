"""`DataConfig`: how to prepare images for a model and its weights.

One per registered weights file (as timm's `pretrained_cfg` and keras_hub's
image converters): input shape, preprocessing mode, crop and resize, label
set. `bn_zoo.models.catalogue` ties one to every weights entry; the
evaluator, the export signatures, the input pipelines and `preprocess_input`
read it.
"""

import dataclasses
import fractions

from bn_zoo.models import labels
from bn_zoo.models.input_scaling import check_mode


# How an image is cut to the model's input (`DataConfig.crop_mode`).
CROP_MODES = ("central_fraction", "shorter_side")
# Resize methods (`DataConfig.interpolation`): tf.image.resize's and
# keras.layers.Resizing's names.
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area", "lanczos3", "lanczos5")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
    """How to prepare the data for a model and its weights (as timm's
    `pretrained_cfg` and keras_hub's image converters): one per registered
    weights, and a model's own for random weights or a file of yours.

    Read by `preprocess_input(model=..., weights=...)`, the evaluator (crop
    fraction, mode and interpolation of its crops), and by whatever feeds
    images to the model; printed by `bn_zoo.model_info`. `data_config(model,
    weights)` gives the one that applies.

    Attributes:
        input_shape: The input the weights were trained and evaluated at,
            (height, width, channels), e.g. (224, 224, 3); None for a model
            whose input is not fixed.
        preprocessing: The `preprocess_input` mode (`PREPROCESSING_MODES`)
            of the 0-255 pixels.
        crop_fraction: Evaluation crop: the fraction of the image's side
            that the input covers, in (0, 1]; 1.0 takes the whole image.
        crop_mode: How `crop_fraction` cuts an H×W image to the input side
            S (the definitions of `bn_zoo.evaluation.crops`):
            `"central_fraction"` (TF-slim, `tf.image.central_crop`): keep
            the central `crop_fraction` of each side, offsets
            ⌊(H − H·f)/2⌋ and ⌊(W − W·f)/2⌋, then resize that to S×S;
            `"shorter_side"` (torchvision, timm, pretrained-models): resize
            the shorter side to round(S / f), then take the central S×S.
        interpolation: The resize method (`INTERPOLATIONS`; antialiasing
            off, half-pixel centres, as `tf.image.resize`).
        label_set: The classes of the output columns, a name of
            `bn_zoo.models.labels` ("imagenet1000",
            "imagenet1001_background", "mnist10", or one registered with
            `labels.register_label_set`); None: unnamed classes.

    Raises:
        ValueError: a field outside the values above ("Received: ...").
    """

    input_shape: tuple
    preprocessing: str
    crop_fraction: float = 0.875
    crop_mode: str = "central_fraction"
    interpolation: str = "bilinear"
    label_set: str = None

    def __post_init__(self):
        shape = self.input_shape
        if shape is not None:
            if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
                raise ValueError(f"`input_shape` must be (height, width, channels) or None. "
                                 f"Received: input_shape={shape!r}")
            shape = tuple(shape)
            if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                    for d in shape):
                raise ValueError(f"`input_shape` must be positive integers, e.g. "
                                 f"(224, 224, 3). Received: input_shape={self.input_shape!r}")
            object.__setattr__(self, "input_shape", shape)
        check_mode(self.preprocessing)
        fraction = self.crop_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
                0 < fraction <= 1):
            raise ValueError(f"`crop_fraction` must be a number in (0, 1], e.g. 0.875. "
                             f"Received: crop_fraction={fraction!r}")
        object.__setattr__(self, "crop_fraction", float(fraction))
        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"`crop_mode` must be one of {CROP_MODES}. "
                             f"Received: crop_mode={self.crop_mode!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"`interpolation` must be one of {INTERPOLATIONS}. "
                             f"Received: interpolation={self.interpolation!r}")
        if self.label_set is not None:
            labels.get(self.label_set)

    @property
    def image_size(self):
        """(height, width) of the input, or None."""
        return None if self.input_shape is None else tuple(self.input_shape[:2])

    def resize_side(self, size=None):
        """The side the shorter image side is resized to before the central
        crop (`crop_mode="shorter_side"`): round(S / crop_fraction), halves
        up, exactly (the fraction read as the decimal it prints as); S is
        `size`, default the input's height."""
        size = self.input_shape[0] if size is None else size
        fraction = fractions.Fraction(repr(self.crop_fraction))
        side = size / fraction
        return int(side + fractions.Fraction(1, 2))

    def class_names(self, num_outputs=None):
        """The class names of `label_set` for a model with `num_outputs`
        outputs (`bn_zoo.models.labels.class_names`); None without a label set."""
        if self.label_set is None:
            return None
        return labels.class_names(self.label_set, num_outputs)

    def to_dict(self):
        """The fields as a JSON-compatible dict (`input_shape` a list)."""
        fields = dataclasses.asdict(self)
        if fields["input_shape"] is not None:
            fields["input_shape"] = list(fields["input_shape"])
        return fields

    @classmethod
    def from_dict(cls, fields):
        """A `DataConfig` from `to_dict`'s dict."""
        return cls(**fields)

    def __str__(self):
        shape = "any input" if self.input_shape is None else "x".join(map(str, self.input_shape))
        percent = f"{100 * self.crop_fraction:.4g}%"
        if self.crop_fraction == 1.0 and self.crop_mode == "central_fraction":
            crop = "whole image"
        elif self.crop_mode == "central_fraction":
            crop = f"central {percent} crop"
        else:
            side = "" if self.input_shape is None else f" = {self.resize_side()}"
            crop = f"shorter side to S/{self.crop_fraction:.4g}{side}, central crop"
        return (f"{shape}, {crop}, {self.interpolation}, preprocessing "
                f"{self.preprocessing!r}, labels {self.label_set or 'unnamed'}")
