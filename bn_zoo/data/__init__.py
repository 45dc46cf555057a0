"""Input pipelines of bn_zoo.

`bn_zoo.data.imagenet` builds the ImageNet pipelines (TFDS or TFRecord shards)
for `tf.distribute`, with the Inception preprocessing of
`bn_zoo.data.preprocessing`; `bn_zoo.data.tfrecords` reads and writes the
standard TFRecord layout. MNIST lives in `bn_zoo.data.mnist` (import it
directly). The fine-tuning sources read a folder of images
(`bn_zoo.data.image_folder`) or any TFDS image classification set
(`bn_zoo.data.tfds_source`); `bn_zoo.data.sources` registers data sources
(`register_data_source`), bn_zoo's and yours.
"""

from bn_zoo.data import imagenet, preprocessing, sources, tfrecords
from bn_zoo.data.sources import ModelInput, register_data_source
from bn_zoo.data.tfrecords import DataError, DataNotFoundError

__all__ = ["DataError", "DataNotFoundError", "ModelInput", "imagenet", "preprocessing",
           "register_data_source", "sources", "tfrecords"]
