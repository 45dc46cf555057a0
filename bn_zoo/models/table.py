"""The README's model tables, generated from the catalogue.

    python -m bn_zoo.models.table > /tmp/models_table.md

prints the model tables, then the pretrained weights table.

Parameter counts come from the built models; multiply-adds are counted by
`multiply_adds` at each model's default input (224×224×3 for Inception).
"""

import math

from keras import layers

from bn_zoo.models import catalogue, hub, zoo


_COUNTED = (
    layers.Conv2D,
    layers.DepthwiseConv2D,
    layers.SeparableConv2D,
    layers.Dense,
)


def multiply_adds(model):
    """Multiply-accumulate operations of one forward pass of one example.

    Counts the convolutions (plain, depthwise and separable) and the dense
    layers, the layers that dominate the cost and that BN folds into at
    inference; batch normalization, pooling, LRN and activations are not
    counted. Every shape must be static.
    """
    total = 0
    for layer in model.layers:
        if not isinstance(layer, _COUNTED):
            continue
        in_channels = layer.input.shape[-1]
        out_shape = layer.output.shape[1:]
        if None in out_shape:
            raise ValueError(
                f"Layer {layer.name!r} has a dynamic output shape {out_shape}; "
                "build the model with a static input_shape to count its cost."
            )
        positions = math.prod(out_shape[:-1])
        if isinstance(layer, layers.Dense):
            total += positions * in_channels * layer.units
        elif isinstance(layer, layers.SeparableConv2D):
            middle = in_channels * layer.depth_multiplier
            depthwise = math.prod(layer.kernel_size) * middle
            total += positions * (depthwise + middle * layer.filters)
        elif isinstance(layer, layers.DepthwiseConv2D):
            middle = in_channels * layer.depth_multiplier
            total += positions * math.prod(layer.kernel_size) * middle
        else:
            per_position = math.prod(layer.kernel_size) * in_channels // layer.groups
            total += positions * per_position * layer.filters
    return total


def _millions(n):
    return f"{n / 1e6:,.2f}M"


def _size(shape):
    return "×".join(str(d) for d in shape)


def _percent(fraction):
    return "—" if fraction is None else f"{100 * fraction:.1f}%"


def _accuracy(results):
    if results["max_accuracy"] is None and "single_crop_top1_error" in results:
        return f"{_percent(1 - results['single_crop_top1_error'])} (Figure 4)"
    return _percent(results["max_accuracy"])


def _steps(steps):
    return "—" if steps is None else f"{steps / 1e6:.1f}M"


def model_rows():
    """(ModelInfo, trainable params, all params, multiply-adds, conv-stem
    (trainable params, multiply-adds) or None) for every registered model."""
    rows = []
    for name in zoo.PAPER_ORDER:
        info = catalogue.model_info(name)
        model = hub.create_model(name)
        conv_stem = None
        if info.family == "inception":
            plain = hub.create_model(name, stem="conv")
            conv_stem = (_trainable(plain), multiply_adds(plain))
        rows.append(
            (
                info,
                _trainable(model),
                model.count_params(),
                multiply_adds(model),
                conv_stem,
            )
        )
    return rows


def _trainable(model):
    return sum(math.prod(v.shape) for v in model.trainable_variables)


def markdown(rows=None):
    """The two README tables (models; recipes) as one markdown string."""
    rows = model_rows() if rows is None else rows
    lines = [
        "| model | paper | input | trainable params | all params | multiply-adds "
        "| conv stem: params / mult-adds | steps to 72.2% | max accuracy |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for info, trainable, total, macs, conv_stem in rows:
        stem = "—"
        if conv_stem is not None:
            stem = f"{conv_stem[0]:,} / {_millions(conv_stem[1])}"
        results = info.paper_results
        lines.append(
            f"| `{info.name}` | {info.paper_section} "
            f"| {_size(info.default_input_shape)} | {trainable:,} "
            f"| {total:,} | {_millions(macs)} | {stem} "
            f"| {_steps(results['steps_to_72_2'])} "
            f"| {_accuracy(results)} |"
        )
    lines += [
        "",
        "| model | optimizer | base lr | momentum | L2 λ | lr decay | dropout | LRN "
        "| distortion | batch/replica | steps |",
        "|---|---|---:|---:|---:|---|---:|---|---:|---:|---:|",
    ]
    for info, *_ in rows:
        r = info.recipe

        def mark(key, text):
            return f"{text}†" if key in info.unstated else text

        steps = "—" if r["train_steps"] is None else f"{r['train_steps']:,}"
        decay = f"×{r['lr_decay_rate']:g} every {r['lr_decay_steps']:,} steps"
        cells = [
            f"`{info.name}`",
            mark("optimizer", r["optimizer"]),
            mark("base_learning_rate", f"{r['base_learning_rate']:g}"),
            mark("momentum", f"{r['momentum']:g}"),
            mark("weight_decay", f"{r['weight_decay']:g}"),
            mark("lr_decay_steps", decay),
            f"{r['dropout_rate']:g}",
            "yes" if r["lrn"] else "no",
            mark("distortion_strength", f"{r['distortion_strength']:g}"),
            str(r["batch_size_per_replica"]),
            steps,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "† not stated by the paper; where each value comes from:", ""]
    notes = {}
    for info, *_ in rows:
        for key, note in info.recipe_notes.items():
            keys, names = notes.setdefault(note, ({}, {}))
            keys[key] = names[info.name] = None  # dicts as ordered sets
    for note, (keys, names) in notes.items():
        keys = ", ".join(f"`{k}`" for k in keys)
        lines.append(f"- {keys} of {', '.join(names)}: {note}")
    return "\n".join(lines)


def weights_markdown():
    """The README's "Pretrained weights" table, from the catalogue."""
    lines = [
        "| model, weights | source | reported accuracy | preprocessing | verified |",
        "|---|---|---|---|---|",
    ]
    for model_name in zoo.PAPER_ORDER:
        for weights_name, entry in catalogue.weights_of(model_name).items():
            reported = entry.reported_accuracy
            accuracy = " / ".join(
                f"{100 * reported[k]:.2f}%" for k in ("top1", "top5") if k in reported
            )
            if accuracy:
                accuracy += f" ({reported['protocol']})"
            mode = catalogue.preprocessing_of(model_name, weights_name)
            lines.append(
                f"| `{model_name}`, `{weights_name}` | {entry.source} "
                f"| {accuracy or '—'} | `{mode}` | {entry.verified} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
    print()
    print(weights_markdown())
