"""The trainer's warning for mixed_bfloat16 on CPUs that emulate bfloat16."""

import tensorflow as tf
from absl import logging

from bn_zoo.training import strategy as strategy_lib

CPUINFO = """processor\t: 0
model name\t: Some Xeon
flags\t\t: fpu sse2 avx2 avx512f {extra}
"""


def _cpuinfo(tmp_path, extra):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra=extra))
    return str(path)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    flags = strategy_lib.cpu_flags(_cpuinfo(tmp_path, "avx512_bf16"))
    assert {"avx2", "avx512f", "avx512_bf16"} <= flags
    assert strategy_lib.cpu_flags(str(tmp_path / "missing")) is None


def test_warns_only_for_bfloat16_on_cpus_without_it(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(logging, "warning", lambda msg, *args: warnings.append(msg % args))
    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    plain = strategy_lib.cpu_flags(_cpuinfo(tmp_path, ""))
    native = strategy_lib.cpu_flags(_cpuinfo(tmp_path, "amx_bf16"))
    assert strategy_lib.warn_if_bfloat16_is_emulated("mixed_bfloat16", cpu, plain)
    assert "float32" in warnings[0] and "avx512_bf16" in warnings[0]
    assert not strategy_lib.warn_if_bfloat16_is_emulated("mixed_bfloat16", cpu, native)
    assert not strategy_lib.warn_if_bfloat16_is_emulated("float32", cpu, plain)
    assert strategy_lib.warn_if_bfloat16_is_emulated(
        "mixed_bfloat16", tf.distribute.get_strategy(), plain)
    assert len(warnings) == 2
