"""The zoo's own catalogue entries: the paper's eight networks and their weights.

Pure data, registered with the same `register_model` that networks of your
own use: each model is an architecture function (`mlp.mlp`,
`inception.inception`) with its defaults, its recipe (`recipes.py`), the
paper's results for it, its data config, and its registered weights with
theirs (classes, the network they fit, and a `DataConfig`: input size, crop,
interpolation, preprocessing, label set). Adding weights is one entry in a
`weights={...}` dict below, e.g.

    "mnist": shipped("mlp_mnist.weights.h5", sha256="...", classes=10,
                     data_config=MNIST_DATA),

(`sha256sum bn_zoo/weights/mlp_mnist.weights.h5` gives the hash; put that
line in `bn_zoo/weights/mlp_mnist.weights.h5.sha256`, the checksum file a
path to the file is checked against). The
releases converted on first use (`release="slim"`, `"caffe_torch"`) are
made by `bn_zoo.models.releases`.
"""

import dataclasses

from bn_zoo.models import inception, inception_variants, mlp
from bn_zoo.models.catalogue import (
    DataConfig,
    Features,
    RegisteredWeights,
    register_model,
    shipped,
)
from bn_zoo.models.recipes import (
    BN_X_RECIPE,
    BN_X_RECIPE_NOTES,
    INCEPTION_RECIPE,
    INCEPTION_RECIPE_NOTES,
    MNIST_RECIPE,
    MNIST_RECIPE_NOTES,
)


def _crop_and_labels(config):
    """`register_model`'s `data_config`: the fields beside preprocessing and
    input shape, which it takes as its own arguments."""
    fields = config.to_dict()
    del fields["preprocessing"], fields["input_shape"]
    return fields


def _results(steps=None, accuracy=None, **extra):
    return {"steps_to_72_2": steps, "max_accuracy": accuracy, **extra}


# -------------------------------------------------------------- data configs
# MNIST's 28x28 digits are fed whole, scaled to [0, 1].
MNIST_DATA = DataConfig(input_shape=(28, 28, 1), preprocessing="mnist", crop_fraction=1.0,
                        label_set="mnist10")
# The paper's ImageNet networks: 224x224 RGB in [-1, 1], evaluated on the
# central 87.5% (the Inception / TF-slim evaluation crop), ImageNet's 1000
# classes in sorted WordNet-ID order.
IMAGENET_DATA = DataConfig(input_shape=(224, 224, 3), preprocessing="inception",
                           crop_fraction=0.875, crop_mode="central_fraction",
                           interpolation="bilinear", label_set="imagenet1000")
# TF-slim's inception_v2: `inception_preprocessing.preprocess_for_eval`
# (tf.image.central_crop(0.875), bilinear resize to 224, [-1, 1]) and its
# 1001 outputs, class 0 = background.
SLIM_IMAGENET_DATA = dataclasses.replace(IMAGENET_DATA, label_set="imagenet1001_background")
# The Caffe BN-Inception in pretrained-models: `TransformImage` (shorter side
# resized to 224 / 0.875 = 256, bilinear, central 224 crop), BGR minus
# (104, 117, 128) on the 0-255 scale, 1000 classes in sorted WordNet-ID order
# (its data/imagenet_classes.txt).
CAFFE_IMAGENET_DATA = DataConfig(input_shape=(224, 224, 3), preprocessing="caffe_bn_inception",
                                 crop_fraction=0.875, crop_mode="shorter_side",
                                 interpolation="bilinear", label_set="imagenet1000")

# ------------------------------------------------------------------ weights
_MNIST_SOURCE = "trained by bn_zoo (`python -m trainers.figure1`), shipped in the package"
_MNIST_CHECK = ("tests/test_mnist_weights.py: sha256 on load, and the accuracy on the "
                "real MNIST test set")
_MLP_WEIGHTS = {
    "mnist": shipped(
        "mlp_mnist.weights.h5",
        sha256="2c6b32f88a3e6d251420c191fa3b58e0784c788473588bb31a1b361fac6eaca7",
        classes=10,
        data_config=MNIST_DATA,
        description="Section 4.1 baseline, trained by `python -m trainers.figure1` "
        "(50,000 steps of batch 60, the registry recipe): 97.55% MNIST test accuracy.",
        source=_MNIST_SOURCE,
        reported_accuracy={"top1": 0.9755, "protocol": "MNIST test set"},
        verified=_MNIST_CHECK,
    ),
}
_BN_MLP_WEIGHTS = {
    "mnist": shipped(
        "bn_mlp_mnist.weights.h5",
        sha256="b9189cdd8fa7b19336c381e66dba71fe3d32f422b55ff0aa34aaea20b1d41f2c",
        classes=10,
        data_config=MNIST_DATA,
        description="Section 4.1 BN network, trained by `python -m trainers.figure1`, "
        "served with Algorithm 2's population statistics over the training set "
        "(98.15% MNIST test accuracy); 98.14% with the moving averages, "
        "batch_norm_kwargs={'inference_statistics': 'moving'}.",
        inference_statistics="population",
        source=_MNIST_SOURCE,
        reported_accuracy={"top1": 0.9815, "protocol": "MNIST test set, population statistics"},
        verified=_MNIST_CHECK,
    ),
}

_BN_INCEPTION_RELEASE = {"depth_multiplier": 1.0, "lrn": False, "activation": "relu"}
_RELEASE_CHECK = (
    "tests/test_convert_{}.py: every variable of the reference network ({}) set "
    "to random values, moving statistics and biases included, saved in the "
    "release's format, converted; logits and every block output agree to 1e-4 "
    "relative on random images"
)
_BN_INCEPTION_WEIGHTS = {
    "imagenet": RegisteredWeights(
        file_name="inception_v2_2016_08_28.tar.gz",
        origin="http://download.tensorflow.org/models/inception_v2_2016_08_28.tar.gz",
        sha256=None,
        classes=1000,
        release_classes=1001,
        release="slim",
        data_config=SLIM_IMAGENET_DATA,
        model_kwargs=dict(_BN_INCEPTION_RELEASE, variant="slim", stem="separable"),
        batch_norm_kwargs=inception_variants.get("slim").batch_norm,
        description="TF-slim's inception_v2 (BN-Inception), trained by Google on "
        "ImageNet; converted from `inception_v2.ckpt`. classes=1000 drops slim's "
        "background class 0, classes=1001 keeps it.",
        source="TF-slim image classification models (github.com/tensorflow/models, "
        "research/slim), Apache License 2.0",
        reported_accuracy={"top1": 0.739, "top5": 0.918, "protocol": "single central crop"},
        verified=_RELEASE_CHECK.format("slim", "tf_slim's nets.inception_v2"),
    ),
    "imagenet_caffe": RegisteredWeights(
        file_name="bn_inception-52deb4733.pth",
        origin="http://data.lip6.fr/cadene/pretrainedmodels/bn_inception-52deb4733.pth",
        sha256=None,
        classes=1000,
        release="caffe_torch",
        data_config=CAFFE_IMAGENET_DATA,
        model_kwargs=dict(_BN_INCEPTION_RELEASE, variant="caffe", stem="conv"),
        batch_norm_kwargs=inception_variants.get("caffe").batch_norm,
        description="The Caffe BN-Inception (Xiong et al., for Temporal Segment "
        "Networks) in the PyTorch port of the pretrained-models package; conv "
        "biases folded into the BN means.",
        source="Cadene's pretrained-models.pytorch (BSD 3-Clause) porting Yuanjun "
        "Xiong's Caffe BN-Inception; the weights file states no license of its own",
        reported_accuracy={"top1": 0.73524, "top5": 0.91562,
                           "protocol": "single crop 224 of the image resized to 256"},
        verified=_RELEASE_CHECK.format("caffe_torch", "pretrained-models' bninception module"),
    ),
}

# ------------------------------------------------------------------- models
_MNIST = dict(
    family="mlp",
    paper_section="4.1",
    preprocessing="mnist",
    input_shape=(28, 28, 1),
    data_config=_crop_and_labels(MNIST_DATA),
    classes=10,
    recipe=MNIST_RECIPE,
    recipe_notes=MNIST_RECIPE_NOTES,
    paper_results=_results(),
)
_IMAGENET = dict(
    family="inception",
    preprocessing="inception",
    input_shape=(224, 224, 3),
    data_config=_crop_and_labels(IMAGENET_DATA),
    classes=1000,
    features=Features(inception.feature_names, inception.feature_model),
)


def _inception(name, batch_norm, recipe, activation="relu"):
    """An Inception model's recipe and the builder defaults it implies."""
    defaults = dict(batch_norm=batch_norm, activation=activation, name=name,
                    dropout_rate=recipe["dropout_rate"], lrn=recipe["lrn"])
    return dict(_IMAGENET, name=name, recipe=recipe, defaults=defaults)


register_model(
    mlp.mlp, name="mlp", **_MNIST, weights=_MLP_WEIGHTS,
    defaults=dict(batch_norm=False, name="mlp"),
    description="3 x 100 sigmoid MLP for MNIST, without BN",
)
register_model(
    mlp.mlp, name="bn_mlp", **_MNIST, weights=_BN_MLP_WEIGHTS,
    defaults=dict(batch_norm=True, name="bn_mlp"),
    description="3 x 100 sigmoid MLP for MNIST, BN before every sigmoid",
)
register_model(
    inception.inception, **_inception("inception", False, INCEPTION_RECIPE),
    recipe_notes=INCEPTION_RECIPE_NOTES,
    paper_section="4.2, 4.2.2, Figure 5",
    paper_results=_results(31_000_000, 0.722),
    description="Inception of Figure 5 without BN: conv biases, ReLU, LRN, dropout 0.4",
)
register_model(
    inception.inception, **_inception("bn_baseline", True, INCEPTION_RECIPE),
    recipe_notes=INCEPTION_RECIPE_NOTES,
    paper_section="4.2.2",
    paper_results=_results(13_300_000, 0.727),
    description="Inception with BN before every nonlinearity, nothing else changed",
)
register_model(
    inception.inception,
    **_inception("bn_inception", True, dict(BN_X_RECIPE, base_learning_rate=0.045)),
    recipe_notes=BN_X_RECIPE_NOTES,
    weights=_BN_INCEPTION_WEIGHTS,
    paper_section="4.2.1, Figure 4",
    paper_results=_results(single_crop_top1_error=0.252, single_crop_top5_error=0.0782),
    description="BN-Inception: BN everywhere, no LRN, no dropout, trained as BN-x30 "
    "(the paper's single network of Figure 4)",
)
register_model(
    inception.inception, **_inception("bn_x5", True, BN_X_RECIPE),
    recipe_notes=BN_X_RECIPE_NOTES,
    paper_section="4.2.1, 4.2.2",
    paper_results=_results(2_100_000, 0.730),
    description="BN-Inception trained with the Section 4.2.1 changes and 5x "
    "Inception's learning rate",
)
register_model(
    inception.inception,
    **_inception("bn_x30", True, dict(BN_X_RECIPE, base_learning_rate=0.045)),
    recipe_notes=BN_X_RECIPE_NOTES,
    paper_section="4.2.2",
    paper_results=_results(2_700_000, 0.748),
    description="BN-x5 with 30x Inception's learning rate",
)
register_model(
    inception.inception, **_inception("bn_x5_sigmoid", True, BN_X_RECIPE, "sigmoid"),
    recipe_notes=BN_X_RECIPE_NOTES,
    paper_section="4.2.2",
    paper_results=_results(None, 0.698),
    description="BN-x5 with sigmoid instead of ReLU",
)

# The zoo's models in the order the paper introduces them.
PAPER_ORDER = ("mlp", "bn_mlp", "inception", "bn_baseline", "bn_inception", "bn_x5",
               "bn_x30", "bn_x5_sigmoid")
