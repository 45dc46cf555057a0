"""matplotlib (Agg backend) for the paper's figures, saved atomically."""

import io
import os

from bn_zoo import runs


def pyplot():
    """`matplotlib.pyplot` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def save_png(fig, path, dpi):
    """Writes `fig` as a PNG to `path` (atomically), closes it, returns `path`."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    runs.atomic_write(os.fspath(path), buffer.getvalue())
    return path
