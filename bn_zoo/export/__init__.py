"""Export for serving: the inference network of Algorithm 2 as a SavedModel,
an ONNX file or a LiteRT file (float32 or int8).

    bn_zoo.export.export_model(model, "/tmp/serving/bn_mlp", "mnist")
    bn_zoo.export.export_registered_model("bn_mlp", EXPORT_DIR, weights="mnist")
    bn_zoo.export.export_registered_model("bn_mlp", EXPORT_DIR, weights="mnist",
                                          format="litert", quantize="int8")
    bn_zoo.export.export_workdir(WORKDIR, EXPORT_DIR, format="onnx")
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
from bn_zoo.export.formats import FILENAMES, FORMATS, serving_model
from bn_zoo.export.signatures import ServingModule
