"""Local response normalization across channels, as GoogLeNet uses it.

Caffe's LRN layer (ACROSS_CHANNELS), which GoogLeNet uses with
`local_size=5, alpha=1e-4, beta=0.75` (k = 1), computes

    b_c = a_c / (k + alpha / n · Σ_{|c' - c| <= n // 2} a_c'²) ** beta

with n = local_size. `tf.nn.local_response_normalization` computes

    b_c = a_c / (bias + alpha_tf · Σ_{|c' - c| <= depth_radius} a_c'²) ** beta

so Caffe's values map to depth_radius = (n - 1) / 2 = 2, bias = k = 1,
alpha_tf = alpha / n = 2e-5, beta = 0.75, the defaults below. The layer runs
TensorFlow's kernel on the TensorFlow backend and the same formula written
with `keras.ops` on JAX and PyTorch.
"""

import keras
from keras import ops

CAFFE_LOCAL_SIZE = 5
CAFFE_ALPHA = 1e-4


def local_response_normalization(inputs, depth_radius, bias, alpha, beta):
    """`tf.nn.local_response_normalization` written with `keras.ops`.

    For a 4-D channels_last `inputs` with a known number of channels C:

        sqr_sum[..., c] = Σ_{c' = c − depth_radius}^{c + depth_radius} x[..., c']²
        y[..., c] = x[..., c] · (bias + alpha · sqr_sum[..., c]) ** (−beta)

    where channels past either edge count as 0. float16 and bfloat16 inputs
    are normalized in float32, where x² cannot overflow, and cast back.
    Returns a tensor of the shape and dtype of `inputs`.
    """
    inputs = ops.convert_to_tensor(inputs)
    dtype = keras.backend.standardize_dtype(inputs.dtype)
    x = ops.cast(inputs, "float32") if dtype in ("float16", "bfloat16") else inputs
    channels = x.shape[-1]
    r = depth_radius
    # The window sum as 2r + 1 shifted slices of the zero-padded squares: the
    # same additions on every device (a banded matmul would round in TF32 on
    # GPUs).
    padded = ops.pad(ops.square(x), [[0, 0], [0, 0], [0, 0], [r, r]])
    sqr_sum = padded[..., 0:channels]
    for offset in range(1, 2 * r + 1):
        sqr_sum = sqr_sum + padded[..., offset : offset + channels]
    outputs = x * ops.power(bias + alpha * sqr_sum, -beta)
    return ops.cast(outputs, dtype)


@keras.saving.register_keras_serializable(package="bn_zoo")
class LocalResponseNormalization(keras.layers.Layer):
    """Normalizes each channel by the energy of its `2·depth_radius + 1`
    neighbouring channels (channels_last):

        sqr_sum[..., c] = Σ_{c' = c − depth_radius}^{c + depth_radius} x[..., c']²
        y[..., c] = x[..., c] / (bias + alpha · sqr_sum[..., c]) ** beta

    where channels past either edge count as 0: the definition of
    `tf.nn.local_response_normalization`. On the TensorFlow backend the layer
    calls that kernel; on JAX and PyTorch it computes the same formula with
    `keras.ops` (`local_response_normalization` in this module, which the
    tests check against TensorFlow's kernel, values and gradients).

    Args:
        depth_radius: Half-width of the channel window, an integer >= 0.
        bias: The constant k.
        alpha: Scale of the sum of squares (Caffe's alpha / local_size).
        beta: Exponent.
        **kwargs: Base layer arguments.

    Input shape: 4-D `(batch, height, width, channels)`. Output: the same.

    Raises:
        TypeError, ValueError: a `depth_radius` that is not an integer >= 0,
            or an input that is not 4-D or has an unknown number of channels.
    """

    def __init__(
        self,
        depth_radius=(CAFFE_LOCAL_SIZE - 1) // 2,
        bias=1.0,
        alpha=CAFFE_ALPHA / CAFFE_LOCAL_SIZE,
        beta=0.75,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(depth_radius, bool) or not isinstance(depth_radius, int):
            raise TypeError(
                f"`depth_radius` must be an integer. Received: {depth_radius!r}"
            )
        if depth_radius < 0:
            raise ValueError(f"`depth_radius` must be >= 0. Received: {depth_radius}")
        self.depth_radius = depth_radius
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}' takes 4-D channels_last "
                f"inputs (batch, height, width, channels). Received: {input_shape}"
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}' needs a known number of "
                f"channels (the last axis). Received: {input_shape}"
            )

    def call(self, inputs):
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # TensorFlow's own kernel: the same formula, 3.7-5x faster on CPU
            # than the keras.ops version, forward and backward (benchmarks/lrn.py).
            return tf.nn.local_response_normalization(
                inputs,
                depth_radius=self.depth_radius,
                bias=self.bias,
                alpha=self.alpha,
                beta=self.beta,
            )
        return local_response_normalization(
            inputs, self.depth_radius, self.bias, self.alpha, self.beta
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "depth_radius": self.depth_radius,
                "bias": self.bias,
                "alpha": self.alpha,
                "beta": self.beta,
            }
        )
        return config
