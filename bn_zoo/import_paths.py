"""Objects named by import path, "package.module:attribute" (timm, ml_collections
and Keras' registered objects use the same spelling).

A user's model or data source can be named this way in a config, without
registering it first: importing the module may register it.
"""

import importlib


def load(path, what):
    """The object at `path`, "package.module:qualname" (dotted attributes
    after the colon), importing the module.

    Args:
        path: The import path.
        what: What the object is, for the messages, e.g. "model" or "data
            source".

    Raises:
        ValueError: `path` has no module or attribute part, the module does
            not import, or has no such attribute; the message says which.
    """
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise ValueError(f"A {what}'s import path is 'package.module:name'; got {path!r}.")
    try:
        target = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"Cannot import module {module_name!r} of {what} {path!r} ({error}). Put its "
            "package on the Python path (e.g. PYTHONPATH).") from error
    for attribute in qualname.split("."):
        if not hasattr(target, attribute):
            raise ValueError(f"Module {module_name!r} has no {qualname!r} ({what} {path!r}).")
        target = getattr(target, attribute)
    return target
