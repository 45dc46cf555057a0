"""TensorFlow's errors of a failed write, as the OSError a plain write raises.

TensorFlow's file writers (checkpoints, summaries) fail with an `OpError`
whose text quotes the system's reason behind a graph-function prefix
(`{{function_node ...}} ... No space left on device [Op:SaveV2]`).
`os_error` turns it into `OSError(errno, strerror, path)`, so the trainer
reports every failed write alike (`DiskFullError` for ENOSPC and EDQUOT).
"""

import errno
import os
import re

import tensorflow as tf

# errno of the strerror text TensorFlow's file errors quote.
_ERRNO_OF_TEXT = {os.strerror(e): e for e in (errno.ENOSPC, errno.EDQUOT, errno.EROFS,
                                              errno.EACCES, errno.EPERM, errno.EIO)}


def os_error(error, path):
    """The OSError (errno and `filename` set) of a failed write of `path`:
    `error` itself if it is one, else from a TensorFlow OpError's text
    (ResourceExhaustedError: ENOSPC unless it quotes another reason)."""
    if isinstance(error, OSError):
        return error if error.filename else OSError(error.errno, error.strerror, path)
    text = str(getattr(error, "message", None) or error)
    for strerror, number in _ERRNO_OF_TEXT.items():
        if strerror in text:
            return OSError(number, strerror, path)
    if isinstance(error, tf.errors.ResourceExhaustedError):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    first = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text).strip().splitlines()
    return OSError(errno.EIO, first[0] if first else type(error).__name__, path)
