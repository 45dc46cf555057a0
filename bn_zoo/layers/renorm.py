"""Batch Renormalization (Ioffe, 2017): the correction (r, d) and its clipping.

Training normalizes each channel with the mini-batch statistics and then
corrects the result towards the moving ones, μ and σ, that inference uses:

    x̂ = (x − μ_B) / σ_B,   σ_B = √(σ²_B + ε)
    r = clip[rmin, rmax](σ_B / σ),   d = clip[−dmax, dmax]((μ_B − μ) / σ)
    y = γ (x̂·r + d) + β

with r and d held constant in backprop (stop-gradient). Unclipped, x̂·r + d =
(x − μ) / σ: the training network then computes what inference computes. σ is
kept at least √ε, as in Keras, so that early steps do not divide by zero.

A clipping bound is a number, or a linear warm-up `(start, end, begin, stop)`:
`start` until the layer's `begin`-th training update, `end` from the
`stop`-th on, linear in between. The paper's schedule for Inception (Section 4)
is rmax from 1 to 3 and dmax from 0 to 5, e.g.

    renorm_clipping={"rmax": (1.0, 3.0, 5000, 40000),
                     "rmin": (1.0, 1 / 3, 5000, 40000),
                     "dmax": (0.0, 5.0, 5000, 25000)}

The step is the layer's own count of moving-average updates
(`moving_statistics_updates`), saved with its weights and checkpoints, so a
schedule continues where a resumed run stopped.
"""

import collections.abc
import math
import numbers

from keras import ops

CLIPPING_KEYS = ("rmin", "rmax", "dmax")


def check_clipping(clipping):
    """Validates `renorm_clipping`; returns it as a dict of floats and
    4-lists, the form `get_config` saves.

    Raises:
        ValueError: `clipping` is neither None nor a dict (or other mapping;
            a ValueError, as Keras raises for it), an unknown key, a
            malformed schedule, a bound that is not a finite number,
            dmax < 0, rmin > 1 or rmax < 1 at any step, or rmin > rmax.
    """
    if clipping is None:
        clipping = {}
    if not isinstance(clipping, collections.abc.Mapping):
        raise ValueError(
            "`renorm_clipping` must be a dict with any of the keys 'rmin', 'rmax', "
            "'dmax' (each a number or a warm-up (start, end, begin_step, end_step)), "
            "e.g. {'rmin': 1/3, 'rmax': 3.0, 'dmax': 5.0}; or None for no clipping. "
            f"Received: renorm_clipping={clipping!r}"
        )
    clipping = dict(clipping)
    unknown = set(clipping) - set(CLIPPING_KEYS)
    if unknown:
        raise ValueError(
            f"Received invalid keys for `renorm_clipping`: {sorted(map(repr, unknown))}. "
            f"Supported keys: {CLIPPING_KEYS}."
        )
    checked = {}
    for key, value in clipping.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            if len(value) != 4 or not all(_is_number(v) for v in value):
                raise ValueError(
                    f"`renorm_clipping['{key}']` must be a number or a warm-up "
                    "(start, end, begin_step, end_step) of four numbers. "
                    f"Received: {value!r}"
                )
            start, end, begin, stop = (float(v) for v in value)
            if not 0 <= begin <= stop:
                raise ValueError(
                    f"The warm-up of `renorm_clipping['{key}']` needs 0 <= "
                    f"begin_step <= end_step. Received: {value!r}"
                )
            checked[key] = [start, end, begin, stop]
            bounds = (start, end)
        elif _is_number(value):
            checked[key] = float(value)
            bounds = (float(value),)
        else:
            raise ValueError(
                f"`renorm_clipping['{key}']` must be a number or a warm-up "
                f"(start, end, begin_step, end_step). Received: {value!r}"
            )
        for bound in bounds:
            if not math.isfinite(bound):
                raise ValueError(
                    f"`renorm_clipping['{key}']` must be finite; leave the key out "
                    f"for no bound. Received: {value!r}"
                )
            if key == "dmax" and bound < 0:
                raise ValueError(f"dmax must be >= 0. Received: {value!r}")
            if key == "rmax" and bound < 1:
                raise ValueError(f"rmax must be >= 1 (r = 1 is no correction). Received: {value!r}")
            if key == "rmin" and not 0 <= bound <= 1:
                raise ValueError(f"rmin must be in [0, 1]. Received: {value!r}")
    return checked


def bound_at(value, step):
    """A clipping bound at `step` (a float32 scalar tensor or a number)."""
    if not isinstance(value, list):
        return value
    start, end, begin, stop = value
    if stop == begin:
        progress = ops.cast(ops.greater_equal(step, stop), "float32")
    else:
        progress = ops.clip((step - begin) / (stop - begin), 0.0, 1.0)
    return start + (end - start) * progress


def correction(mean, stddev, renorm_mean, renorm_stddev, epsilon, clipping, step):
    """`(r, d)`, clipped and without gradient.

    Args:
        mean, stddev: μ_B and σ_B = √(σ²_B + ε) of the mini-batch (or of each
            ghost batch: any shape that broadcasts with the channels).
        renorm_mean, renorm_stddev: μ and σ, shape `(C,)`.
        epsilon: ε; σ is used as max(σ, √ε).
        clipping: The checked `renorm_clipping`.
        step: The layer's update count, for warm-up schedules.
    """
    renorm_stddev = ops.maximum(renorm_stddev, math.sqrt(epsilon))
    r = stddev / renorm_stddev
    d = (mean - renorm_mean) / renorm_stddev
    rmin, rmax, dmax = (
        bound_at(clipping[k], step) if k in clipping else None for k in CLIPPING_KEYS
    )
    if rmin is not None:
        r = ops.maximum(r, rmin)
    if rmax is not None:
        r = ops.minimum(r, rmax)
    if dmax is not None:
        d = ops.maximum(ops.minimum(d, dmax), -dmax)
    return ops.stop_gradient(r), ops.stop_gradient(d)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
