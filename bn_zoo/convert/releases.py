"""Registered public releases: fetched once, verified, converted once, cached.

`create_model("bn_inception", weights="imagenet")` calls `fetch_converted`:

1. `keras.utils.get_file` fetches the release file (`entry.origin`) into
   `<keras cache>/models/bn_zoo/releases/`, once.
2. It is verified as far as the release allows: a `.pth` whose name carries
   a hash prefix (`bn_inception-52deb4733.pth`, torch.hub's convention) must
   have a sha256 starting with it; a slim archive must be a readable tar
   holding `inception_v2.ckpt`, and the conversion checks every variable.
3. It is converted (`bn_zoo.convert`) and written atomically to
   `<keras cache>/models/bn_zoo/<model>_<weights>_<classes>.weights.h5`.

A download that fails verification or conversion is deleted, so no cache
entry is left and the next call fetches again.
"""

import os
import re

import keras
from keras.src.backend.config import keras_home

from bn_zoo.convert.assign import ConversionError
from bn_zoo.models import weights as weights_lib

RELEASES_SUBDIR = weights_lib.CACHE_SUBDIR + "/releases"
_HASH_PREFIX = re.compile(r"-([a-f0-9]{6,64})\.")


def converter(release):
    """The converter function of a release kind ("slim" or "caffe_torch")."""
    from bn_zoo import convert

    return {"slim": convert.from_slim, "caffe_torch": convert.from_caffe_torch}[release]


def _cache_dir():
    # The directory `get_file` uses (`$KERAS_HOME`, default ~/.keras).
    base = weights_lib.CACHE_DIR or keras_home()
    return os.path.join(os.path.expanduser(base), weights_lib.CACHE_SUBDIR)


def converted_path(model_name, weights_name, classes):
    """Where the converted weights of a registered release are cached."""
    return os.path.join(_cache_dir(), f"{model_name}_{weights_name}_{classes}.weights.h5")


def verify_hash_prefix(path):
    """Checks a file named like `name-<hex>.ext` against its sha256 prefix
    (torch.hub's convention); files without one pass.

    Raises:
        ConversionError: the sha256 does not start with the prefix.
    """
    match = _HASH_PREFIX.search(os.path.basename(path))
    if match is None:
        return
    digest = weights_lib.sha256_of(path)
    if not digest.startswith(match.group(1)):
        raise ConversionError(
            f"{path} has sha256 {digest[:16]}..., but its name says it starts with "
            f"{match.group(1)}: the download is truncated or corrupted."
        )


def fetch_release(model_name, weights_name):
    """Local path of a registered release file, fetched into the Keras cache."""
    entry = weights_lib.registered_weights(model_name)[weights_name]
    if weights_lib.CACHE_DIR is not None:
        os.makedirs(weights_lib.CACHE_DIR, exist_ok=True)
    return keras.utils.get_file(
        fname=entry.file_name,
        origin=entry.origin,
        cache_subdir=RELEASES_SUBDIR,
        cache_dir=weights_lib.CACHE_DIR,
    )


def fetch_converted(model_name, weights_name, classes=None):
    """Path of the converted `.weights.h5` of a registered release (see the
    module docstring); converts on first use.

    `classes=None` is for a model without the classifier: any converted file
    in the cache serves, else the registered class count is converted.

    Raises:
        ConversionError: (a ValueError) the release failed verification or
            conversion; the download was deleted. Other errors (no PyTorch,
            no network) keep a verified download for the next call.
    """
    entry = weights_lib.registered_weights(model_name)[weights_name]
    if classes is None:
        for accepted in entry.accepted_classes:
            if os.path.isfile(converted_path(model_name, weights_name, accepted)):
                return converted_path(model_name, weights_name, accepted)
        classes = entry.classes
    target = converted_path(model_name, weights_name, classes)
    if os.path.isfile(target):
        return target
    release = fetch_release(model_name, weights_name)
    try:
        verify_hash_prefix(release)
        model = converter(entry.release)(release, classes=classes)
        weights_lib.save_weights_atomically(model, target)
    except ConversionError as error:
        if os.path.exists(release):
            os.remove(release)
        raise ConversionError(
            f"The registered weights {weights_name!r} of {model_name!r} "
            f"({entry.origin}) were not loaded: {error} The downloaded file "
            "was deleted; the next call downloads it again."
        ) from error
    return target
