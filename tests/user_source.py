"""A data source of a user's own, outside bn_zoo (tests/test_data_sources.py):
bright or dark squares, named by import path `user_source:Squares` or
registered as "squares"."""

import ml_collections
import numpy as np
import tensorflow as tf


class Squares:
    """Images of one grey level per class; takes the model's input."""

    FIELD_DOCS = {"name": "Data source.", "examples": "Examples per split."}

    @staticmethod
    def default_config():
        return ml_collections.ConfigDict({"name": "user_source:Squares", "examples": 8})

    @staticmethod
    def check_config(data):
        if data["examples"] < 2:
            raise ValueError(f"config.data.examples must be >= 2; got {data['examples']!r}.")

    def __init__(self, data, preprocess=None, model_input=None):
        self.model_input = model_input
        self.num_classes = 2
        self.class_names = ["dark", "bright"]
        shape = model_input.image_shape if model_input else (8, 8, 1)
        labels = np.arange(data.examples) % 2
        self._images = np.stack([np.full(shape, 40 + 170 * y, np.float32) for y in labels])
        self._labels = labels.astype(np.int32)

    def _dataset(self, batch):
        return tf.data.Dataset.from_tensor_slices((self._images, self._labels)).batch(batch)

    def train_dataset_fn(self, global_batch_size, seed, start_step):
        return lambda input_context=None: self._dataset(global_batch_size).repeat()

    def eval_dataset_fn(self, global_batch_size):
        return lambda input_context=None: self._dataset(global_batch_size)

    def population_dataset(self, global_batch_size, seed):
        return self._dataset(global_batch_size).repeat()

    def probe_examples(self, num_examples):
        return self._images[:num_examples]


class NoNames(Squares):
    """Without class names (the trainer numbers the classes)."""

    def __init__(self, data, preprocess=None):
        super().__init__(data, preprocess)
        del self.class_names


class Incomplete:
    """Lacks most of the interface."""

    @staticmethod
    def default_config():
        return ml_collections.ConfigDict({"name": "user_source:Incomplete"})


class SlowSquares(Squares):
    """`Squares` that take a minute to load, saying so on stderr first (for a
    signal sent while a command loads its data)."""

    LOADING = "user_source.SlowSquares: loading"

    def __init__(self, data, preprocess=None, model_input=None):
        import sys
        import time

        print(self.LOADING, file=sys.stderr, flush=True)
        time.sleep(60)
        super().__init__(data, preprocess, model_input)
