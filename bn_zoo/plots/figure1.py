"""Deprecated: moved to `bn_zoo.paper.figure1` (the same functions).
Importing this module warns (DeprecationWarning)."""

import warnings

from bn_zoo.paper.figure1 import (  # noqa: F401
    format_summary,
    percentile_columns,
    plot,
    summarize,
)

warnings.warn("bn_zoo.plots.figure1 is deprecated: use bn_zoo.paper.figure1 instead.",
              DeprecationWarning, stacklevel=2)
