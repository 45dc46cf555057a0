"""The training state in a checkpoint of the trainer, compared with another's.

A resumed run must end where an uninterrupted one does: the model's and the
optimizer's variables of its final checkpoint equal the reference's (float32
rounding aside).
"""

import numpy as np
import tensorflow as tf


def training_state(checkpoint):
    """{name: array} of the model's and the optimizer's variables in
    `checkpoint` (a checkpoint prefix, e.g. `.../checkpoints/ckpt-40`)."""
    reader = tf.train.load_checkpoint(str(checkpoint))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.startswith(("model/", "optimizer/")) and "OBJECT_GRAPH" not in name}


def assert_same_training_state(checkpoint, reference):
    """Every variable of `checkpoint` equals `reference`'s within rtol 1e-5,
    atol 1e-6, and both hold the same (more than 10) variables."""
    ours, theirs = training_state(checkpoint), training_state(reference)
    assert ours.keys() == theirs.keys() and len(ours) > 10, sorted(ours.keys() ^ theirs.keys())
    for name in theirs:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-6, err_msg=name)
