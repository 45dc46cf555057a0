"""Local response normalization across channels, as GoogLeNet uses it.

Caffe's LRN layer (ACROSS_CHANNELS), which GoogLeNet uses with
`local_size=5, alpha=1e-4, beta=0.75` (k = 1), computes

    b_c = a_c / (k + alpha / n · Σ_{|c' - c| <= n // 2} a_c'²) ** beta

with n = local_size. `tf.nn.local_response_normalization` computes

    b_c = a_c / (bias + alpha_tf · Σ_{|c' - c| <= depth_radius} a_c'²) ** beta

so Caffe's values map to depth_radius = (n - 1) / 2 = 2, bias = k = 1,
alpha_tf = alpha / n = 2e-5, beta = 0.75, the defaults below.
"""

import keras

CAFFE_LOCAL_SIZE = 5
CAFFE_ALPHA = 1e-4


@keras.saving.register_keras_serializable(package="bn_zoo")
class LocalResponseNormalization(keras.layers.Layer):
    """Normalizes each channel by the energy of its `2·depth_radius + 1`
    neighbouring channels (channels_last), with
    `tf.nn.local_response_normalization`.

    Args:
        depth_radius: Half-width of the channel window.
        bias: The constant k.
        alpha: Scale of the sum of squares (Caffe's alpha / local_size).
        beta: Exponent.
        **kwargs: Base layer arguments.
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
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                "LocalResponseNormalization uses tf.nn.local_response_normalization "
                "and needs the TensorFlow backend."
            )
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

    def call(self, inputs):
        import tensorflow as tf

        return tf.nn.local_response_normalization(
            inputs,
            depth_radius=self.depth_radius,
            bias=self.bias,
            alpha=self.alpha,
            beta=self.beta,
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
