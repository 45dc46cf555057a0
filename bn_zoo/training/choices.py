"""The choices and defaults the trainer's flags offer, in a module that
imports nothing: `bn_zoo.training.cli` defines its flags from them, so that
`--help` answers before TensorFlow is imported. `bn_zoo.training.config`
and `bn_zoo.training.cluster` re-export them."""

# tf.distribute strategies: config.strategy and --strategy.
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")

# Seconds to wait for a TPU or the TF_CONFIG workers: --cluster_timeout.
DEFAULT_CONNECT_TIMEOUT = 300
