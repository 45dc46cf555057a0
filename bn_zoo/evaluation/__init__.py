"""ImageNet evaluation with the paper's crop protocols (1, 10, 144 crops).

    from bn_zoo import evaluation

    members = [evaluation.registered("bn_inception", "imagenet"),
               evaluation.from_workdir("workdirs/imagenet/bn_x5")]
    results = evaluation.evaluate(members, {"source": "tfds"}, protocol=144)
    print(results.table())

`python -m trainers.evaluate` is its command line; `docs/evaluation.md`
defines the protocols to the pixel. Modules: `crops` (the protocols),
`members` (the models and their input scaling), `evaluator` (the loop).
"""

from bn_zoo.evaluation import crops
from bn_zoo.evaluation.crops import PROTOCOLS, crop_image
from bn_zoo.evaluation.evaluator import Accuracy, Results, background_columns, evaluate
from bn_zoo.evaluation.members import (
    Member,
    common_input_size,
    from_lists,
    from_workdir,
    registered,
)

__all__ = [
    "Accuracy",
    "Member",
    "PROTOCOLS",
    "Results",
    "background_columns",
    "common_input_size",
    "crop_image",
    "crops",
    "evaluate",
    "from_lists",
    "from_workdir",
    "registered",
]
