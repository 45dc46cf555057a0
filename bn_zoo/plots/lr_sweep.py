"""Deprecated: moved to `bn_zoo.paper.lr_sweep` (the same functions).
Importing this module warns (DeprecationWarning)."""

import warnings

from bn_zoo.paper.lr_sweep import (  # noqa: F401
    COLUMNS,
    claim,
    format_table,
    good_range,
    plot,
    run_row,
    write_csv,
)

warnings.warn("bn_zoo.plots.lr_sweep is deprecated: use bn_zoo.paper.lr_sweep instead.",
              DeprecationWarning, stacklevel=2)
