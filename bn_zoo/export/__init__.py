"""Export for serving: the inference network of Algorithm 2 as a SavedModel.

    bn_zoo.export.export_model(model, "/tmp/serving/bn_mlp", "mnist")
    bn_zoo.export.export_registered_model("bn_mlp", EXPORT_DIR, weights="mnist")
    bn_zoo.export.export_workdir(WORKDIR, EXPORT_DIR)
"""

from bn_zoo.export.exporter import (
    check_destination,
    export_model,
    export_registered_model,
    export_workdir,
    next_version,
)
from bn_zoo.export.folding import (
    batch_norm_affine,
    fold_batch_normalization,
    foldable_pairs,
)
from bn_zoo.export.signatures import ServingModule
