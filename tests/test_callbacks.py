"""`bn_zoo.callbacks.PopulationStatistics` inside `model.fit`: Keras' own `val_loss` at every epoch against a numpy
evaluation with numpy population statistics of that epoch's weights, and a
convnet trained for 100 steps on real MNIST that must not sit at chance."""

import keras
import numpy as np
import pytest
from test_population import TOL, build_model, numpy_forward
from test_population_inputs import reference, slices

from bn_zoo import callbacks, population

BATCH = 6


def data(n, seed):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, 4, 4, 2)) * 1.5 + 0.5).astype("float32")
    return x, rng.normal(size=(n, 5)).astype("float32")


X, Y = data(24, 1)
X_VAL, Y_VAL = data(10, 2)
X_EST = data(18, 3)[0]  # the estimate's batches, in order


class Weights(keras.callbacks.Callback):
    """The weights at every epoch's end (after its validation)."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(self.model.get_weights())


def statistics_of(weights, moving=False):
    """(a model with `weights`, the statistics its inference network uses:
    the numpy population statistics of its training network, or its moving
    averages)."""
    model = build_model()
    model.set_weights(weights)
    if moving:
        return model, {n: (model.get_layer(n).moving_mean.numpy(),
                           model.get_layer(n).moving_variance.numpy())
                       for n in ("bn_conv", "bn_dense")}
    return model, reference(model, slices(X_EST, BATCH))


def val_loss(model, stats):
    out, _ = numpy_forward(model, X_VAL, stats)
    return np.mean((out - Y_VAL) ** 2)


def test_validation_uses_population_statistics_of_that_epoch():
    """every=2 over 3 epochs: epoch 1 validates with the moving averages,
    epoch 2 estimates just before validating, epoch 3 keeps epoch 2's
    estimate, and the end of training estimates the final weights."""
    model = build_model()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    callback = callbacks.PopulationStatistics(X_EST, batch_size=BATCH, shuffle=False, every=2)
    weights = Weights()
    history = model.fit(X, Y, batch_size=BATCH, epochs=3, validation_data=(X_VAL, Y_VAL),
                        callbacks=[callback, weights], verbose=0)

    assert callback.estimates == 2
    for epoch, source in enumerate([None, 1, 1]):
        current, _ = statistics_of(weights.epochs[epoch])
        if source is None:
            stats = statistics_of(weights.epochs[epoch], moving=True)[1]
        else:
            stats = statistics_of(weights.epochs[source])[1]
        np.testing.assert_allclose(history.history["val_loss"][epoch],
                                   val_loss(current, stats), rtol=1e-5, err_msg=str(epoch))
    final_model, final = statistics_of(weights.epochs[-1])
    for name, (mean, variance) in final.items():
        np.testing.assert_allclose(model.get_layer(name).population_mean, mean, **TOL)
        np.testing.assert_allclose(model.get_layer(name).population_variance, variance, **TOL)
    np.testing.assert_allclose(model.predict(X_VAL, verbose=0),
                               numpy_forward(final_model, X_VAL, final)[0], **TOL)
    # Training itself was not changed: 3 epochs of 4 steps moved the weights.
    assert not np.allclose(weights.epochs[0][0], weights.epochs[-1][0])


def test_without_validation_estimates_at_the_end():
    model = build_model()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    callback = callbacks.PopulationStatistics(X_EST, batch_size=BATCH, shuffle=False, every=5)
    model.fit(X, Y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[callback])
    assert callback.estimates == 1
    _, final = statistics_of(model.get_weights())
    for name, (mean, _) in final.items():
        np.testing.assert_allclose(model.get_layer(name).population_mean, mean, **TOL)


@pytest.mark.parametrize("kwargs,error", [
    (dict(every=0), ValueError), (dict(every=1.5), TypeError),
    (dict(num_batches=-1), ValueError), (dict(batch_size=0), ValueError),
])
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        callbacks.PopulationStatistics(X_EST, **kwargs)


def test_a_convnet_after_100_steps_is_not_at_chance():
    """100 Adam steps of batch 128 with the default momentum
    0.99 leave the moving averages far behind the weights (13.7% on these
    2,000 test images when measured, near chance); with the callback, the
    model fit returns predicts with Algorithm 2's statistics. Real MNIST."""
    from bn_zoo.data import mnist
    from bn_zoo.layers import BatchNormalization

    images, labels = mnist.load("train")
    test_images, test_labels = mnist.load("test")
    x = images[:12800].astype("float32") / 255.0
    y = labels[:12800]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(16, 3, use_bias=False),
        BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, use_bias=False),
        BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = callbacks.PopulationStatistics(x, batch_size=128, num_batches=20)
    model.fit(x, y, batch_size=128, epochs=1, verbose=0, callbacks=[callback])

    assert callback.estimates == 1
    assert all(l.inference_statistics == "population"
               for l in population.batch_normalization_layers(model))
    x_test = test_images[:2000].astype("float32") / 255.0
    accuracy = np.mean(model.predict(x_test, verbose=0).argmax(-1) == test_labels[:2000])
    assert accuracy > 0.9, accuracy
