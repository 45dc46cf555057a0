"""A config as text: every field, its value, where the value comes from, its
default and its meaning (what `--print_config` prints).

    optimizer.base_learning_rate = 0.25  [recipe base_learning_rate; default None]
        Learning rate at a global batch of reference_batch_size: ...

The origin is `command line` (a --config.<field>, --strategy, --tpu or
--data_dir flag), `recipe <key>` (left at None and filled from that key of
the model's recipe in the registry), `config file` (set by the experiment's
config) or nothing (the default; the default is shown when the value
differs from it). Meanings come from `bn_zoo.training.config.field_docs` and,
for an entry point's own fields, from the docs it passes.
"""

import dataclasses
import textwrap

from bn_zoo.training import config as config_lib
from bn_zoo.training import inputs


@dataclasses.dataclass
class Field:
    """One line of the description."""

    path: str
    value: str  # As Python would write it.
    notes: list
    meaning: str


def trainer_fields(config, overridden=(), prefix=""):
    """The `Field`s of a trainer config, resolved as the trainer resolves it.

    Args:
        config: A trainer config (`ConfigDict`), before `config.resolve`.
        overridden: Dotted paths set on the command line (with `prefix`).
        prefix: Written before every path, e.g. "train." for Figure 1's.

    Raises:
        ConfigError: the config does not resolve (as the trainer would).
    """
    raw = config_lib.flat_fields(config)
    resolved = config_lib.resolve(config)
    data_name = resolved.data.name
    defaults = config_lib.to_dict(config_lib.default_config())
    defaults["data"] = config_lib.to_dict(inputs.default_config(data_name))
    defaults = config_lib.flat_fields(defaults)
    docs = config_lib.field_docs(data_name)
    order = {path: i for i, path in enumerate(docs)}
    values = sorted(config_lib.flat_fields(resolved).items(),
                    key=lambda item: order.get(item[0], len(order)))
    fields = []
    for path, value in values:
        default = defaults.get(path)
        notes = []
        if prefix + path in overridden:
            notes.append("command line")
        elif raw.get(path) is None and value is not None and path in config_lib.RECIPE_FIELDS:
            notes.append(f"recipe {config_lib.RECIPE_FIELDS[path]}")
        elif value != default:
            notes.append("config file")
        if value != default:
            notes.append(f"default {default!r}")
        fields.append(Field(prefix + path, repr(value), notes, docs.get(path, "")))
    return fields


def plain_fields(config, docs, overridden=()):
    """The `Field`s of the entries of `docs` (dotted paths) in `config`."""
    flat = config_lib.flat_fields(config)
    fields = []
    for path, meaning in docs.items():
        notes = ["command line"] if path in overridden else []
        fields.append(Field(path, repr(flat.get(path)), notes, meaning))
    return fields


def merge(labelled_fields):
    """One list of `Field`s from several of the same paths, e.g. Figure 1's
    trainer config resolved for each network: `{label: fields}`. A value that
    differs between them is written `label: value; ...`."""
    labels = list(labelled_fields)
    merged = []
    for rows in zip(*labelled_fields.values()):
        first = rows[0]
        if len({r.value for r in rows}) > 1:
            value = "; ".join(f"{label}: {r.value}" for label, r in zip(labels, rows))
            notes = [n for n in first.notes if not n.startswith("default")]
            merged.append(Field(first.path, value, notes, first.meaning))
        else:
            merged.append(first)
    return merged


def format_fields(fields, header=""):
    """The text `--print_config` prints: `header`, then each field's
    `path = value  [origin; default]` and its meaning, indented."""
    lines = [textwrap.fill(header, 88), ""] if header else []
    for field in fields:
        notes = f"  [{'; '.join(field.notes)}]" if field.notes else ""
        lines.append(f"{field.path} = {field.value}{notes}")
        if field.meaning:
            lines.append(textwrap.fill(field.meaning, 88, initial_indent="    ",
                                       subsequent_indent="    "))
    return "\n".join(lines)
