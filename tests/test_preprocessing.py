"""Inception-style preprocessing against TensorFlow's own image ops and numpy."""

import numpy as np
import pytest
import tensorflow as tf

from bn_zoo.data import preprocessing

SIZE = 24


def _jpeg(height, width, seed=0):
    rng = np.random.default_rng(seed)
    pixels = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    # Without chroma subsampling, decoding a crop gives exactly the pixels of
    # the full decode, so the fused decode-and-crop can be compared exactly.
    return tf.io.encode_jpeg(pixels, quality=95, chroma_downsampling=False)


def _resized(image):
    """Reference: bilinear resize to SIZE × SIZE, scaled to [-1, 1]."""
    return tf.image.resize(image, [SIZE, SIZE]).numpy() / 127.5 - 1.0


@pytest.mark.parametrize("shape", [(50, 37), (123, 97), (64, 64)])
def test_eval_is_central_crop_then_resize(shape):
    jpeg = _jpeg(*shape)
    decoded = tf.io.decode_jpeg(jpeg, channels=3)
    expected = _resized(tf.image.central_crop(decoded, 0.875))
    np.testing.assert_allclose(preprocessing.preprocess_for_eval(jpeg, SIZE), expected, atol=1e-5)
    np.testing.assert_allclose(
        preprocessing.preprocess_for_eval(decoded, SIZE), expected, atol=1e-5)
    # central_fraction=1 keeps the whole image.
    np.testing.assert_allclose(
        preprocessing.preprocess_for_eval(jpeg, SIZE, central_fraction=1.0),
        _resized(decoded), atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_output_shape_dtype_and_range(dtype):
    for shape in [(40, 30), (9, 120), (300, 16)]:
        jpeg = _jpeg(*shape)
        for image in (
            preprocessing.preprocess_for_train(jpeg, tf.constant([1, 2]), SIZE, dtype=dtype),
            preprocessing.preprocess_for_eval(jpeg, SIZE, dtype=dtype),
        ):
            assert image.shape == (SIZE, SIZE, 3)
            assert image.dtype == tf.as_dtype(dtype)
            values = tf.cast(image, tf.float32).numpy()
            assert values.min() >= -1.0 and values.max() <= 1.0
            # A random image uses most of the range, so this is not all zeros.
            assert values.max() - values.min() > 1.0


def test_train_is_reproducible_from_the_seed():
    jpeg = _jpeg(80, 60)
    outputs = [preprocessing.preprocess_for_train(jpeg, tf.constant([7, s]), SIZE).numpy()
               for s in range(6)]
    again = preprocessing.preprocess_for_train(jpeg, tf.constant([7, 3]), SIZE).numpy()
    np.testing.assert_array_equal(again, outputs[3])
    for i in range(6):
        for j in range(i):
            assert not np.allclose(outputs[i], outputs[j])


def test_zero_strength_is_whole_image_resized_and_maybe_flipped():
    jpeg = _jpeg(50, 40)
    whole = _resized(tf.io.decode_jpeg(jpeg, channels=3))
    flipped = whole[:, ::-1]
    seen = set()
    for s in range(8):
        out = preprocessing.preprocess_for_train(
            jpeg, tf.constant([0, s]), SIZE, distortion_strength=0.0,
            area_range=(1.0, 1.0), aspect_ratio_range=(0.1, 10.0)).numpy()
        if np.allclose(out, whole, atol=1e-5):
            seen.add("plain")
        else:
            np.testing.assert_allclose(out, flipped, atol=1e-5)
            seen.add("flipped")
    assert seen == {"plain", "flipped"}


def test_distortion_grows_with_strength():
    jpeg = _jpeg(60, 60)

    def mean_change(strength):
        changes = []
        for s in range(12):
            seed = tf.constant([3, s])
            plain = preprocessing.preprocess_for_train(jpeg, seed, SIZE, distortion_strength=0.0)
            distorted = preprocessing.preprocess_for_train(
                jpeg, seed, SIZE, distortion_strength=strength)
            changes.append(np.abs(distorted.numpy() - plain.numpy()).mean())
        return np.mean(changes)

    weak, strong = mean_change(0.2), mean_change(1.0)
    assert 0.0 < weak < strong


def test_distort_color_brightness_bound():
    # Brightness alone is a uniform shift of at most strength · 32/255; the
    # other ops leave a grey image grey and contrast keeps its mean, so on a
    # uniform grey image the whole change is that shift.
    grey = tf.fill([8, 8, 3], 0.5)
    for strength in (0.25, 1.0):
        for s in range(10):
            out = preprocessing.distort_color(grey, strength, tf.constant([s, 1])).numpy()
            assert np.ptp(out) < 1e-5
            assert abs(out.mean() - 0.5) <= strength * 32 / 255 + 1e-5


def test_crop_windows_respect_area_and_aspect_ranges():
    height, width = 300, 400
    areas, ratios = [], []
    for s in range(200):
        top, left, h, w = (int(v) for v in preprocessing.random_crop_window(
            tf.constant([height, width]), tf.constant([5, s])))
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width
        areas.append(h * w / (height * width))
        ratios.append(w / h)
    areas, ratios = np.array(areas), np.array(ratios)
    whole = areas == 1.0  # After 10 failed attempts the crop is the whole image.
    assert whole.mean() < 0.2
    assert areas.min() >= 0.08 - 0.01
    # Pixel rounding moves the ratio a little outside [3/4, 4/3].
    assert ratios[~whole].min() >= 0.75 - 0.02 and ratios[~whole].max() <= 4 / 3 + 0.02
    assert areas.min() < 0.2 and np.median(areas[~whole]) < 0.7


@pytest.mark.parametrize("kwargs, match", [
    ({"distortion_strength": 1.5}, "distortion_strength"),
    ({"dtype": "int8"}, "dtype"),
    ({"area_range": (0.5, 0.1)}, "area_range"),
    ({"area_range": (0.0, 1.0)}, "area_range"),
    ({"aspect_ratio_range": (2.0, 1.0)}, "aspect_ratio_range"),
    ({"image_size": 0}, "image_size"),
])
def test_bad_train_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        preprocessing.preprocess_for_train(_jpeg(10, 10), tf.constant([0, 0]), **kwargs)


def test_bad_eval_arguments():
    with pytest.raises(ValueError, match="central_fraction"):
        preprocessing.preprocess_for_eval(_jpeg(10, 10), SIZE, central_fraction=0.0)
    with pytest.raises(TypeError, match="uint8"):
        preprocessing.preprocess_for_eval(tf.zeros([10, 10, 3]), SIZE)


# ------------------------------------------ preprocess_input's scaling modes
# The two ImageNet modes against float64 formulas written from their sources
# (torchvision's ImageNet mean/std; the Caffe ResNet BGR means) and against
# keras.applications' own preprocess_input, an independent implementation.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
CAFFE_RESNET_BGR_MEANS = np.array([103.939, 116.779, 123.68])
KERAS_MODES = {"imagenet_mean_std": "torch", "caffe_resnet": "caffe"}


def _pixels(dtype, seed=3):
    return np.random.default_rng(seed).integers(0, 256, (3, 5, 7, 3)).astype(dtype)


def _float64_reference(pixels, mode):
    x = pixels.astype(np.float64)
    if mode == "imagenet_mean_std":
        return (x / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return x[..., ::-1] - CAFFE_RESNET_BGR_MEANS


@pytest.mark.parametrize("mode", sorted(KERAS_MODES))
@pytest.mark.parametrize("dtype", ["uint8", "float32", "float64"])
def test_imagenet_modes_match_float64_and_keras_applications(mode, dtype):
    from keras.applications import imagenet_utils

    import bn_zoo

    pixels = _pixels(dtype)
    ours = bn_zoo.preprocess_input(pixels, mode)
    assert isinstance(ours, np.ndarray) and ours.shape == pixels.shape
    assert ours.dtype == ("float32" if dtype == "uint8" else dtype)
    np.testing.assert_allclose(ours, _float64_reference(pixels, mode), rtol=1e-6, atol=1e-4)
    oracle = imagenet_utils.preprocess_input(pixels.astype("float32"), mode=KERAS_MODES[mode])
    np.testing.assert_allclose(ours, oracle, rtol=1e-6, atol=1e-5)
    # The input is not modified in place (keras.applications' may be).
    np.testing.assert_array_equal(pixels, _pixels(dtype))


@pytest.mark.parametrize("mode", sorted(KERAS_MODES))
def test_imagenet_modes_as_tensors_in_tf_data_and_in_a_model(mode, tmp_path):
    import keras

    from bn_zoo.models import PreprocessInput, preprocess_input

    pixels = _pixels("uint8", seed=4)
    expected = _float64_reference(pixels, mode)
    tensor = preprocess_input(tf.constant(pixels), mode)
    assert tf.is_tensor(tensor) and tensor.dtype == tf.float32
    np.testing.assert_allclose(tensor.numpy(), expected, rtol=1e-6, atol=1e-4)
    mapped = tf.data.Dataset.from_tensor_slices(pixels).map(lambda x: preprocess_input(x, mode))
    np.testing.assert_allclose(np.stack(list(mapped.as_numpy_iterator())), expected,
                               rtol=1e-6, atol=1e-4)
    # The layer, saved in a .keras file and loaded back.
    model = keras.Sequential([keras.Input(pixels.shape[1:]), PreprocessInput(mode)])
    path = str(tmp_path / "scaling.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(pixels.astype("float32"), verbose=0), expected,
                               rtol=1e-6, atol=1e-4)


def test_keras_applications_mode_names_are_refused_with_ours():
    from bn_zoo.models import PreprocessInput, preprocess_input

    for keras_name, ours in (("torch", "imagenet_mean_std"), ("caffe", "caffe_resnet")):
        with pytest.raises(ValueError, match=f"'{keras_name}' is bn_zoo's '{ours}'"):
            preprocess_input(np.zeros((1, 2, 2, 3)), keras_name)
        with pytest.raises(ValueError, match="Unknown preprocessing mode"):
            PreprocessInput(keras_name)


def test_preprocessing_layers_are_found_at_any_depth():
    import keras

    from bn_zoo.models import PreprocessInput
    from bn_zoo.models.input_scaling import preprocessing_layer, preprocessing_layers

    inner_scaling = PreprocessInput("caffe_resnet")
    inner = keras.Sequential([keras.Input((4, 4, 3)), inner_scaling, keras.layers.Flatten()])
    inputs = keras.Input((4, 4, 3))
    outer = keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)))
    assert preprocessing_layer(outer) is None  # Only the model's own layers.
    assert preprocessing_layers(outer) == [inner_scaling]
    top = PreprocessInput("inception")
    wrapped = keras.Sequential([keras.Input((4, 4, 3)), top, outer])
    assert preprocessing_layer(wrapped) is top
    assert preprocessing_layers(wrapped) == [top, inner_scaling]
