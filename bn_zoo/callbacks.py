"""Keras callbacks of bn_zoo.

`PopulationStatistics` gives `model.fit` users the paper's inference network
(Algorithm 2) without a loop of their own, as detectron2's `PreciseBN` hook
does for PyTorch training.
"""

import keras

from bn_zoo import population


class PopulationStatistics(keras.callbacks.Callback):
    """Estimates Algorithm 2's population statistics during `fit`.

    Algorithm 2 of Ioffe & Szegedy (2015), steps 8-10, replaces the moving
    averages of every `bn_zoo.layers.BatchNormalization` layer by statistics
    of training mini-batches run through the trained network:

        E[x] = E_B[μ_B],   Var[x] = m'/(m'−1) · E_B[σ²_B]

    (`bn_zoo.population.estimate`). This callback does it inside `fit`: every
    `every` epochs, just before the validation (so `val_*` metrics are those
    of the inference network with population statistics), or at the end of
    the epoch when it has no validation; and at the end of training, so that
    the model `fit` returns predicts with statistics of its final weights.
    Training itself is unchanged: it normalizes with mini-batch statistics
    and keeps updating the moving averages. Validations of the other epochs
    use the last estimate.

    ```python
    model.fit(x_train, y_train, batch_size=128, epochs=3, validation_split=0.1,
              callbacks=[bn_zoo.callbacks.PopulationStatistics(x_train, batch_size=128,
                                                               num_batches=100)])
    model.predict(x_test)   # Algorithm 2's inference network
    ```

    Args:
        data: Training data, in any form `population.estimate` takes: arrays
            (with `batch_size`), `(x, y[, sample_weight])` tuples of arrays, a
            `tf.data.Dataset`, a `keras.utils.PyDataset`, a list of batches.
            Preprocessed as in training, in mini-batches of the training
            size m. A Python generator is used up by its first estimate:
            pass a re-iterable form.
        num_batches: Batches per estimate; None (default) for one pass over
            finite data. Endless data needs a number.
        every: Estimate every `every` epochs (1-based: epochs `every`,
            `2·every`, ...), and at the end of training.
        batch_size: The mini-batch size m, for arrays and unbatched datasets.
        shuffle: For arrays: random batches, as `fit` draws them.
        include_frozen: Also estimate layers frozen with `trainable=False`
            (see `population.estimate`).

    Raises:
        ValueError, TypeError: `every`, `num_batches` or `batch_size` not a
            positive integer (at construction); the errors of
            `population.estimate` at the first estimate.
    """

    def __init__(self, data, num_batches=None, every=1, *, batch_size=None, shuffle=True,
                 include_frozen=False):
        super().__init__()
        population._check_positive("num_batches", num_batches)
        population._check_positive("batch_size", batch_size)
        if population._check_positive("every", every) is None:
            raise TypeError("`every` must be an integer; received None.")
        self.data = data
        self.num_batches = num_batches
        self.every = int(every)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.include_frozen = include_frozen
        self.estimates = 0
        self._in_fit = False
        self._current = False
        self._epoch = 0

    def estimate(self):
        """Runs `population.estimate` on the model now."""
        population.estimate(
            self.model, self.data, self.num_batches, batch_size=self.batch_size,
            shuffle=self.shuffle, include_frozen=self.include_frozen,
        )
        self.estimates += 1
        self._current = True

    def _due(self):
        return (self._epoch + 1) % self.every == 0

    def on_train_begin(self, logs=None):
        self._in_fit = True
        self._current = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._current = False  # The epoch's steps will move the weights.

    def on_test_begin(self, logs=None):
        # Inside fit, this is the validation at the end of an epoch.
        if self._in_fit and not self._current and self._due():
            self.estimate()

    def on_epoch_end(self, epoch, logs=None):
        if not self._current and self._due():
            self.estimate()

    def on_train_end(self, logs=None):
        self._in_fit = False
        if not self._current:
            self.estimate()
