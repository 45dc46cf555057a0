"""Label sets: the classes a classifier's outputs stand for, in output order.

Pure data, read offline from files shipped in the package (nothing is
downloaded). A label set has a name, recorded with registered weights
(`DataConfig.label_set`), and per output column a class ID and a class name:

- `"imagenet1000"`: the 1000 ImageNet ILSVRC-2012 classes in sorted WordNet-ID
  order (index 0 = n01440764 "tench", 999 = n15075141 "toilet_tissue"), the
  order of the Caffe BN-Inception release, of TF-slim's classes 1..1000, of
  TensorFlow Datasets' `imagenet2012` labels and of `keras.applications`.
  IDs are the WordNet IDs; names follow keras.applications' convention (the
  first WordNet lemma, spaces as underscores). Provenance: the header of
  `imagenet1000.tsv`, beside this module.
- `"imagenet1001_background"`: TF-slim's 1001 outputs, column 0 a
  "background" class and column i + 1 ImageNet class i. A model built from
  slim's weights with `classes=1000` has dropped column 0 already, so
  `class_names("imagenet1001_background", 1000)` is the 1000 real classes.
- `"mnist10"`: the digits "0".."9" (ID and name alike).

Label sets of your own (e.g. the sorted folder names of a fine-tuning run)
are added with `register_label_set`.
"""

import dataclasses
import functools
import importlib.resources

IMAGENET_FILE = "imagenet1000.tsv"
BACKGROUND = "background"


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """One label set.

    Attributes:
        name: Its name (`DataConfig.label_set`).
        description: One line on what the classes are and their order.
        background: Whether output column 0 is a background class that is
            not one of the classes (TF-slim's 1001 outputs); a model may
            then have `len(class_ids) - 1` outputs, column 0 dropped.
    """

    name: str
    description: str
    background: bool = False
    _load: object = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def class_ids(self):
        """Class IDs, one per output column (background included)."""
        return self._load()[0]

    @property
    def class_names(self):
        """Class names, one per output column (background included)."""
        return self._load()[1]

    @property
    def output_widths(self):
        """The output widths a model with this label set may have."""
        full = len(self.class_ids)
        return (full, full - 1) if self.background else (full,)


_LABEL_SETS = {}


@functools.cache
def _imagenet():
    """(WordNet IDs, names) of the 1000 classes, from the shipped file."""
    text = importlib.resources.files(__package__).joinpath(IMAGENET_FILE).read_text("utf-8")
    ids, names = [], []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        index, wnid, name = line.split("\t")
        if int(index) != len(ids):
            raise RuntimeError(f"{IMAGENET_FILE} is corrupt: class {index} on row {len(ids)}.")
        ids.append(wnid)
        names.append(name)
    if len(ids) != 1000:
        raise RuntimeError(f"{IMAGENET_FILE} is corrupt: {len(ids)} classes, not 1000.")
    return tuple(ids), tuple(names)


def _with_background():
    ids, names = _imagenet()
    return (BACKGROUND, *ids), (BACKGROUND, *names)


def _digits():
    digits = tuple(str(d) for d in range(10))
    return digits, digits


def register_label_set(name, class_names, class_ids=None, description="", background=False):
    """Adds a label set (or replaces one of your own).

    Args:
        name: Its name, for `DataConfig(label_set=name)`.
        class_names: One string per output column, in output order.
        class_ids: One string per column (e.g. WordNet IDs); default: the
            names.
        description: One line on what the classes are.
        background: Whether column 0 is a background class (see `LabelSet`).

    Raises:
        ValueError: a name of the zoo's own label sets, no classes, or IDs
            whose number differs from the names'.
        TypeError: names or IDs that are not strings.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"A label set's name must be a non-empty string. Received: {name!r}")
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is one of the zoo's own label sets; register yours "
                         "under another name.")
    names = _strings("class_names", class_names)
    ids = names if class_ids is None else _strings("class_ids", class_ids)
    if len(ids) != len(names):
        raise ValueError(f"{len(ids)} class_ids for {len(names)} class_names; give one "
                         f"ID per class. Received: {len(ids)} IDs.")
    _LABEL_SETS[name] = LabelSet(name, description, bool(background), lambda: (ids, names))
    return _LABEL_SETS[name]


def _strings(what, values):
    if isinstance(values, str) or not hasattr(values, "__iter__"):
        raise TypeError(f"`{what}` must be a sequence of strings, one per class. "
                        f"Received: {values!r}")
    values = tuple(values)
    if not values:
        raise ValueError(f"`{what}` must name at least one class. Received: ()")
    wrong = [v for v in values if not isinstance(v, str)]
    if wrong:
        raise TypeError(f"`{what}` must all be strings. Received: {wrong[0]!r} "
                        f"({type(wrong[0]).__name__}).")
    return values


def label_sets():
    """Sorted names of the known label sets."""
    return sorted(_LABEL_SETS)


def get(name):
    """The `LabelSet` called `name`.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if not isinstance(name, str) or name not in _LABEL_SETS:
        raise ValueError(f"Unknown label set {name!r}; known: {label_sets()} "
                         "(bn_zoo.models.labels.register_label_set adds one). "
                         f"Received: label_set={name!r}")
    return _LABEL_SETS[name]


def class_names(label_set, num_outputs=None):
    """The class names of `label_set` for a model with `num_outputs` outputs.

    `num_outputs=None` gives every column of the label set (slim's 1001,
    background first). For a background label set, one output fewer means
    that column 0 was dropped (slim's weights built with `classes=1000`).

    Raises:
        ValueError: an unknown label set, or a width it does not have.
    """
    return _columns(label_set, num_outputs)[1]


def class_ids(label_set, num_outputs=None):
    """The class IDs of `label_set` (WordNet IDs for ImageNet), as
    `class_names`."""
    return _columns(label_set, num_outputs)[0]


def _columns(label_set, num_outputs):
    labels = get(label_set)
    ids, names = labels.class_ids, labels.class_names
    if num_outputs is None or num_outputs == len(ids):
        return ids, names
    if labels.background and num_outputs == len(ids) - 1:
        return ids[1:], names[1:]
    widths = " or ".join(str(w) for w in labels.output_widths)
    raise ValueError(f"Label set {label_set!r} has {widths} outputs. Received: "
                     f"num_outputs={num_outputs!r}")


def imagenet_synsets():
    """The WordNet IDs of the 1000 ImageNet classes, in output order."""
    return _imagenet()[0]


_BUILTIN = {
    "imagenet1000": LabelSet(
        "imagenet1000", "ImageNet ILSVRC-2012, 1000 classes in sorted WordNet-ID order",
        False, _imagenet),
    "imagenet1001_background": LabelSet(
        "imagenet1001_background", "TF-slim's ImageNet outputs: 0 = background, then the "
        "1000 classes in sorted WordNet-ID order", True, _with_background),
    "mnist10": LabelSet("mnist10", "MNIST digits 0..9", False, _digits),
}
_LABEL_SETS.update(_BUILTIN)
