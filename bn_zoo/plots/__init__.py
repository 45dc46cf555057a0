"""Deprecated: the paper's plots moved to `bn_zoo.paper` (`bn_zoo.plots.figure1`
-> `bn_zoo.paper.figure1`, `bn_zoo.plots.lr_sweep` -> `bn_zoo.paper.lr_sweep`).
Importing this package warns (DeprecationWarning)."""

import warnings

warnings.warn("bn_zoo.plots is deprecated: use bn_zoo.paper.figure1 and "
              "bn_zoo.paper.lr_sweep instead.", DeprecationWarning, stacklevel=2)
