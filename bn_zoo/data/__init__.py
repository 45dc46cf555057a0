"""Input pipelines of bn_zoo.

`bn_zoo.data.imagenet` builds the ImageNet pipelines (TFDS or TFRecord shards)
for `tf.distribute`, with the Inception preprocessing of
`bn_zoo.data.preprocessing`; `bn_zoo.data.tfrecords` reads and writes the
standard TFRecord layout. MNIST lives in `bn_zoo.data.mnist` (import it
directly).
"""

from bn_zoo.data import imagenet, preprocessing, tfrecords
from bn_zoo.data.tfrecords import DataError, DataNotFoundError

__all__ = ["DataError", "DataNotFoundError", "imagenet", "preprocessing", "tfrecords"]
