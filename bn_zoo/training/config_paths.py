"""Config spellings: a config file's variants, and the files they replaced.

A config file with variants (big_vision's `get_config(arg)`) is named as
`--config=FILE:VARIANT`; ml_collections passes the text after the first ':'
to `get_config`:

    python -m trainers.train --config=configs/imagenet.py:bn_x5 ...

Such a file declares its variants in a module-level `VARIANTS` dict
({variant: one-line description}) and picks one with `variant(arg, ...)`.

Earlier, each variant was a file of its own (`configs/imagenet_bn_x5.py`);
`REPLACED` maps those file names to the new spellings, and
`refuse_replaced_config(argv)` (called by `cli.parse_flags` before absl parses
the flags) stops a command that names one with one line naming the new
spelling. It also checks a `FILE:VARIANT` against the file's `VARIANTS`, so a
wrong variant is one line rather than ml_collections' traceback.
"""

import importlib.util
import inspect
import os
import sys

from bn_zoo.training.errors import ConfigError

# Config file names that became variants: {old file: (new file, variant)}.
REPLACED = {
    **{f"imagenet_{name}.py": ("imagenet.py", name) for name in (
        "inception", "bn_baseline", "bn_inception", "bn_x5", "bn_x30", "bn_x5_sigmoid")},
    **{f"ablation_{name}.py": ("ablation.py", name) for name in (
        "inception", "bn_baseline", "bn_x5", "bn_x30", "bn_x5_sigmoid", "inception_x5_lr",
        "inception_sigmoid")},
    "mnist_mlp.py": ("mnist.py", "mlp"),
    "mnist_bn_mlp.py": ("mnist.py", "bn_mlp"),
}


def variant(arg, variants, config, default):
    """The variant `arg` names (None: `default`).

    Args:
        arg: The text after ':' in `--config=FILE:VARIANT`, or None.
        variants: {variant: description} of the config file.
        config: The config file's name for messages, e.g. "configs/imagenet.py".
        default: The variant a bare `--config=FILE` runs.

    Raises:
        ConfigError: `arg` is not one of `variants`.
    """
    if arg is None or arg == "":
        return default
    if arg not in variants:
        raise ConfigError(unknown_variant_message(config, arg, variants))
    return arg


def unknown_variant_message(config, arg, variants):
    """One line: `config` has no variant `arg`, and the ones it has."""
    return (f"{config} has no variant {arg!r}; its variants are {', '.join(variants)} "
            f"(--config={config}:<variant>).")


def replacement(path):
    """The new spelling of a replaced config file `path` (with its directory
    part kept), or None if `path` exists or was not replaced."""
    directory, name = os.path.split(path)
    if name not in REPLACED or os.path.exists(path):
        return None
    new_name, new_variant = REPLACED[name]
    return f"{os.path.join(directory, new_name)}:{new_variant}"


def config_argument(argv):
    """The value of --config in `argv` (`--config=X` or `--config X`), or None."""
    args = list(argv[1:])
    for index, arg in enumerate(args):
        if arg == "--":
            break
        for prefix in ("--config=", "-config="):
            if arg.startswith(prefix):
                return arg[len(prefix):]
        if arg in ("--config", "-config") and index + 1 < len(args):
            return args[index + 1]
    return None


def check_config_argument(value):
    """None if the --config value `value` can be loaded as far as spelling
    goes, else the one-line message (without "ERROR (ConfigError): ")."""
    path, colon, arg = value.partition(":")
    new = replacement(path)
    if new is not None:
        return f"{path} was replaced by {new}; run with --config={new}"
    if not colon or not os.path.isfile(path):
        return None  # cli.loaded reports a missing file.
    module = _load(path)
    if module is None:
        return None
    variants = getattr(module, "VARIANTS", None)
    if variants is not None and arg not in variants:
        return unknown_variant_message(path, arg, variants)
    if variants is None and not _takes_an_argument(getattr(module, "get_config", None)):
        return f"{path} has no variants; run with --config={path}"
    return None


def refuse_replaced_config(argv):
    """Prints `ERROR (ConfigError): ...` and exits 1 if argv's --config names
    a replaced config file or a variant its file does not have."""
    value = config_argument(argv)
    message = check_config_argument(value) if value else None
    if message:
        print(f"ERROR (ConfigError): {message}", file=sys.stderr, flush=True)
        sys.exit(1)


def _load(path):
    """The config module at `path`, or None if it does not load (ml_collections
    then reports why)."""
    try:
        spec = importlib.util.spec_from_file_location("_bn_zoo_config_check", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception:  # noqa: BLE001 - reported when ml_collections loads it.
        return None
    return module


def _takes_an_argument(get_config):
    if get_config is None:
        return True  # ml_collections reports the missing get_config.
    try:
        parameters = inspect.signature(get_config).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
               for p in parameters)
