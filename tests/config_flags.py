"""Config fields set in a test's own process as `--config.<a.b.c>=value`
flags set them on the command line (values read as Python literals where they
parse, else kept as strings)."""

import ast


def set_field(config, path, value):
    """Sets the dotted field `path` ("a.b.c") of `config` to `value`."""
    *parents, last = path.split(".")
    target = config
    for parent in parents:
        target = target[parent]
    target[last] = value


def apply(config, flags):
    """Applies `--config.<path>=value` flags to `config`; returns it."""
    for flag in flags:
        path, value = flag[len("--config."):].split("=", 1)
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
        set_field(config, path, value)
    return config
