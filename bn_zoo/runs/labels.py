"""The `labels.txt` format: class names, one per line, in output order.

A run directory records its data's class names in `RUN_DIR/labels.txt`, and
every export carries the same file (`bn_zoo.export.class_names`): UTF-8, name
i on line i (the class of output column i), each line ending in a newline.
It is the format of TFLite's label files, and of the sorted folder names of
`keras.utils.image_dataset_from_directory`.
"""

LABELS_FILE = "labels.txt"

# Characters str.splitlines() breaks at: a class name must hold none of them.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def check_names(class_names):
    """`class_names` as a tuple, checked for a labels file.

    Raises:
        TypeError: not a sequence of strings (a single string included).
        ValueError: no name, an empty name, or a name holding a line break.
    """
    if isinstance(class_names, (str, bytes)) or not hasattr(class_names, "__iter__"):
        raise TypeError("`class_names` must be a sequence of strings, one per output "
                        f"column. Received: {class_names!r:.80}")
    names = tuple(class_names)
    if not names:
        raise ValueError("`class_names` is empty; give one name per output column.")
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(f"Class name {index} must be a string. Received: {name!r} "
                            f"({type(name).__name__}).")
        if not name.strip():
            raise ValueError(f"Class name {index} is empty; every class needs a name. "
                             f"Received: {name!r}")
        if any(c in name for c in LINE_BREAKS):
            raise ValueError(f"Class name {index} holds a line break, which {LABELS_FILE} "
                             f"(one name per line) cannot hold. Received: {name!r}")
    return names


def labels_text(names):
    """The text of a labels file: one name per line, each ending in a newline."""
    return "".join(f"{name}\n" for name in names)


def read_labels(path):
    """The class names in the labels file `path`, a tuple in output order. A
    final line break is optional; blank lines at the end are ignored.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not UTF-8 text, no name, or a blank line between names.
    """
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}); "
                         "save it as UTF-8, one class name per line.") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path} names no class; write one class name per line, in "
                         "output order.")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise ValueError(f"Line {number} of {path} is blank; every output column needs "
                             "a name (one per line, in output order).")
    return tuple(lines)
