"""Deprecated: the catalogue's old name.

The models, their recipes and results are now `bn_zoo.models.catalogue`
(lookups, `register_model`), `bn_zoo.models.recipes` (the recipes) and
`bn_zoo.models.zoo` (the paper's models); `create_model` is
`bn_zoo.models.hub`'s. Every name below still works, with a
DeprecationWarning.
"""

from bn_zoo import _deprecation

_deprecation.alias(__name__, {
    "ModelInfo": "bn_zoo.models.catalogue:ModelInfo",
    "create_model": "bn_zoo.models.hub:create_model",
    "list_models": "bn_zoo.models.catalogue:list_models",
    "model_info": "bn_zoo.models.catalogue:model_info",
    "register_model": "bn_zoo.models.catalogue:register_model",
    "PAPER_ORDER": "bn_zoo.models.zoo:PAPER_ORDER",
    **{name: f"bn_zoo.models.recipes:{name}" for name in (
        "IMAGENET_TRAIN_EXAMPLES", "MNIST_RECIPE", "MNIST_RECIPE_NOTES", "INCEPTION_RECIPE",
        "INCEPTION_RECIPE_NOTES", "BN_X_RECIPE", "BN_X_RECIPE_NOTES")},
})
