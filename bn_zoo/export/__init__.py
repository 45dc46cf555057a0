"""Export for serving: the inference network of Algorithm 2 as a SavedModel,
an ONNX file or a LiteRT file (float32 or int8), carrying the class names.

    bn_zoo.export.export_model(model, "/tmp/serving/bn_mlp", "mnist",
                               class_names=["zero", "one", ...])
    bn_zoo.export.export_registered_model("bn_mlp", EXPORT_DIR, weights="mnist")
    bn_zoo.export.export_registered_model("bn_mlp", EXPORT_DIR, weights="mnist",
                                          format="litert", quantize="int8")
    bn_zoo.export.export_workdir(WORKDIR, EXPORT_DIR, format="onnx")
    bn_zoo.export.export_model_file("finetuned.keras", EXPORT_DIR,
                                    class_names=bn_zoo.export.read_labels_file("labels.txt"))
"""

from bn_zoo.export.class_names import (
    LABELS_FILE,
    METADATA_KEY,
    read_labels_file,
)
from bn_zoo.export.exporter import (
    check_destination,
    export_model,
    export_model_file,
    export_registered_model,
    export_workdir,
    load_model_file,
    next_version,
)
from bn_zoo.export.folding import (
    batch_norm_affine,
    fold_batch_normalization,
    foldable_pairs,
)
from bn_zoo.export.formats import FILENAMES, FORMATS, serving_model
from bn_zoo.export.portable import read_class_names
from bn_zoo.export.signatures import ServingModule
