"""`tf.distribute` strategies for the trainer, by name.

    default                 the default strategy: one device, no distribution
    one_device              OneDeviceStrategy on the first GPU, else the CPU
    mirrored                MirroredStrategy over all GPUs, else all logical CPUs
    multi_worker_mirrored   MultiWorkerMirroredStrategy, cluster from TF_CONFIG
    tpu                     TPUStrategy: resolve, connect and initialize the TPU
                            system first (before any dataset is built)

The global batch of the config is split evenly among replicas; see
`per_replica_batch_size`.

Connecting to a cluster (the TPU, or the other workers of `TF_CONFIG`) has a
deadline, `connect_timeout` seconds (`--cluster_timeout`), and `TF_CONFIG` is
checked first: see `bn_zoo.training.cluster`.
"""

import tensorflow as tf
from absl import logging

from bn_zoo.training.cluster import (DEFAULT_CONNECT_TIMEOUT, deadline, tf_config_peers,
                                     tpu_resolver)
from bn_zoo.training.errors import ConfigError


def configure_cpu_devices(num_devices):
    """Splits the CPU into `num_devices` logical devices (0: leave as is).

    This must run before TensorFlow initializes its runtime (before the first
    op or device query). If the runtime is already up with that many logical
    CPUs (e.g. under the test suite's conftest) this is a no-op.
    """
    if not num_devices:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices
        )
    except RuntimeError as error:
        have = len(tf.config.list_logical_devices("CPU"))
        if have == num_devices:
            return
        raise ConfigError(
            f"config.num_cpu_devices={num_devices} cannot be applied: TensorFlow is "
            f"already initialized with {have} logical CPU(s). Set it before any "
            "TensorFlow op runs (the trainers/ entry points do), or use 0."
        ) from error


# A process may hold one multi-worker or TPU strategy; later runs reuse it.
_PROCESS_STRATEGIES = {}


def create_strategy(name, tpu="", connect_timeout=None):
    """The `tf.distribute.Strategy` called `name` (see the module docstring).

    Args:
        name: One of `STRATEGIES` (bn_zoo.training.config).
        tpu: For "tpu": the TPU's name, a grpc://host:port address, or
            "" / "local" on a TPU VM.
        connect_timeout: Seconds to wait for the TPU or the `TF_CONFIG`
            cluster (None: `DEFAULT_CONNECT_TIMEOUT`).

    Raises:
        ConfigError: a malformed `TF_CONFIG`, or "tpu" with no TPU named
            off a TPU VM.
        ClusterError: no TPU at `tpu`.
    Past the deadline the process exits with code 1 (see the module docstring).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name in ("multi_worker_mirrored", "tpu"):
        # Before any device query: these configure the runtime at start-up.
        timeout = DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        return _process_strategy(name, tpu, timeout)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy([d.name for d in gpus])
        # On CPUs, reduce on one device rather than with collective ops, whose
        # instance keys clash when a process creates several strategies.
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(
            cpus, cross_device_ops=tf.distribute.ReductionToOneDevice(reduce_to_device=cpus[0]))
    raise ConfigError(f"Unknown strategy {name!r}.")


def _process_strategy(name, tpu, timeout):
    if (name, tpu) in _PROCESS_STRATEGIES:
        return _PROCESS_STRATEGIES[(name, tpu)]
    if name == "multi_worker_mirrored":
        peers = tf_config_peers()
        with deadline(timeout, "the other workers of TF_CONFIG", peers):
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        resolver = tpu_resolver(tpu)
        addresses = [a for a in resolver.cluster_spec().as_dict().get("worker", [])]
        what = f"the TPU {tpu!r}" if tpu else "the TPU"
        with deadline(timeout, what, addresses):
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        logging.info("TPU devices: %s", tf.config.list_logical_devices("TPU"))
        strategy = tf.distribute.TPUStrategy(resolver)
    _PROCESS_STRATEGIES[(name, tpu)] = strategy
    return strategy


def per_replica_batch_size(global_batch_size, strategy, field="global_batch_size"):
    """`global_batch_size` / replicas, or a ConfigError if it does not divide."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        lower = global_batch_size - global_batch_size % replicas
        raise ConfigError(
            f"config.{field}={global_batch_size} does not divide among the "
            f"{replicas} replicas of this strategy. Use a multiple of {replicas}, "
            f"e.g. {lower or replicas} or {lower + replicas}."
        )
    return global_batch_size // replicas


def task(strategy):
    """`(task_type, task_id)` of this process in a multi-worker cluster, or
    `(None, 0)`."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return None, 0
    return resolver.task_type, resolver.task_id or 0


def is_chief(strategy):
    """Whether this process writes the workdir (config, metrics, summaries)."""
    task_type, task_id = task(strategy)
    if task_type is None or task_type == "chief":
        return True
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    jobs = strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and "chief" not in jobs


# CPU flags of native bfloat16 arithmetic (Linux names in /proc/cpuinfo).
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags, or None where the system does not list them."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def native_bfloat16_flags(flags=None):
    """The bfloat16 flags among `flags` (default: this CPU's), sorted, or
    None where the CPU's flags are unknown."""
    flags = cpu_flags() if flags is None else flags
    return None if flags is None else sorted(flags & set(BFLOAT16_CPU_FLAGS))


def warn_if_bfloat16_is_emulated(precision, strategy, flags=None):
    """Warns when mixed_bfloat16 runs on CPUs without bfloat16 instructions.

    There TensorFlow emulates bfloat16 in float32 and the run is several
    times slower than in float32 (measured: 0.26x on an AVX-512 CPU without
    AVX512_BF16). Returns whether it warned.
    """
    if precision != "mixed_bfloat16":
        return False
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return False
    if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"):
        return False  # Strategies place replicas on accelerators when there are any.
    native = native_bfloat16_flags(flags)
    if native is None or native:
        return False
    logging.warning(
        "mixed_bfloat16 on a CPU without %s: TensorFlow emulates bfloat16 and "
        "trains several times slower than in float32. Use "
        "--config.mixed_precision=float32 on this machine.",
        " or ".join(BFLOAT16_CPU_FLAGS),
    )
    return True
