"""Config files found by name as well as by path.

    bn-zoo-train --config=figure1 ...                  # by name
    bn-zoo-train --config=mnist:bn_mlp ...             # a variant, by name
    python -m trainers.train --config=configs/mnist.py:bn_mlp ...   # by path

A `--config` value whose path (the part before the first ':') is not a file
is looked up by name among bn_zoo's own config files: `NAME` or `NAME.py`,
also written `configs/NAME.py` (the spelling of the README, which then works
outside a checkout too). They are the modules of `bn_zoo.configs` in an
installed package (the repository's `configs/` folder, mapped into the
package by pyproject.toml) and, in a source checkout, the `configs/` folder
beside `bn_zoo/`. A value that names neither is left as it is, and the
command reports the missing file.

`with_config_path(argv)` rewrites `--config` in a command line to the file's
path; `bn_zoo.training.cli.parse_flags` calls it before absl parses the
flags. This module imports the standard library only (it runs before
TensorFlow is imported).
"""

import os

# .../bn_zoo (this file is bn_zoo/training/config_files.py).
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FLAG_PREFIXES = ("--config=", "-config=")


def config_directories():
    """The directories named configs are looked up in, in order: the
    installed `bn_zoo/configs`, then a source checkout's `configs/`."""
    directories = []
    installed = os.path.join(_PACKAGE, "configs")
    if os.path.isfile(os.path.join(installed, "__init__.py")):
        directories.append(installed)
    root = os.path.dirname(_PACKAGE)
    checkout = os.path.join(root, "configs")
    if (os.path.isfile(os.path.join(root, "pyproject.toml"))
            and os.path.isfile(os.path.join(checkout, "__init__.py"))
            and checkout not in directories):
        directories.append(checkout)
    return directories


def available():
    """The names of bn_zoo's config files (`--config=<name>`), sorted."""
    names = set()
    for directory in config_directories():
        names.update(name[:-3] for name in os.listdir(directory)
                     if name.endswith(".py") and not name.startswith("_"))
    return sorted(names)


def find(name):
    """The path of config file `name` ("figure1", "figure1.py" or
    "configs/figure1.py"), or None if bn_zoo has no such config file."""
    head, base = os.path.split(name)
    if head.rstrip("/") not in ("", "configs") or not base or base.startswith("_"):
        return None
    if not base.endswith(".py"):
        base += ".py"
    for directory in config_directories():
        path = os.path.join(directory, base)
        if os.path.isfile(path):
            return path
    return None


def resolve(value):
    """A `--config` value with a config name replaced by its file's path
    (the variant after ':' kept); a path that exists, or a value that names
    no config of bn_zoo, comes back unchanged."""
    path, colon, variant = value.partition(":")
    if not path or os.path.exists(path):
        return value
    found = find(path)
    return value if found is None else found + colon + variant


def with_config_path(argv):
    """`argv` with its `--config=VALUE` (or `--config VALUE`) resolved by
    `resolve`; everything else as it was."""
    argv = list(argv)
    for index in range(1, len(argv)):
        arg = argv[index]
        if arg == "--":
            break
        for prefix in _FLAG_PREFIXES:
            if arg.startswith(prefix):
                argv[index] = prefix + resolve(arg[len(prefix):])
        if arg in ("--config", "-config") and index + 1 < len(argv):
            argv[index + 1] = resolve(argv[index + 1])
    return argv
