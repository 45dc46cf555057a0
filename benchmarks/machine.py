"""The machine a benchmark's figures come from, in one line.

Every script in `benchmarks/` prints `describe()` with its figures, so that a
figure carries its machine with it: the CPU model, the vector instruction
sets TensorFlow's CPU kernels use (AVX-512 or only AVX2; AVX512_BF16 and AMX
run bfloat16 natively), whether TensorFlow runs its oneDNN kernels (on by
default where the CPU has AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX; set
`TF_ENABLE_ONEDNN_OPTS=0` or `1` to choose), the load average (other
processes inflate timings), and the TensorFlow, Keras and bn_zoo versions.

    import machine  # benchmarks/ is the script's directory
    print(machine.describe())
"""

import os
import platform

# /proc/cpuinfo flag -> name printed, in the order printed.
_FLAGS = {
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX512_VNNI",
    "avx512_bf16": "AVX512_BF16",
    "amx_tile": "AMX",
}
# TensorFlow turns oneDNN on by default on CPUs with any of these.
_ONEDNN_DEFAULT_FLAGS = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile")


def cpu_model_and_flags(cpuinfo="/proc/cpuinfo"):
    """`(model name, set of flags)` from `cpuinfo` (Linux); elsewhere
    `(platform.processor(), empty set)`."""
    model, flags = None, set()
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if model is not None and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or "unknown CPU", flags


def instruction_sets(flags):
    """"AVX-512 (AVX512_VNNI, AVX512_BF16)", "AVX2 (no AVX-512)", ... from the
    CPU flags; "unknown" without them."""
    if not flags:
        return "instruction set unknown"
    if "avx512f" not in flags:
        base = "AVX2 (no AVX-512)" if "avx2" in flags else "no AVX2"
    else:
        base = "AVX-512"
    extras = [name for flag, name in _FLAGS.items() if flag != "avx512f" and flag in flags]
    return base + (f" ({', '.join(extras)})" if extras else "")


def onednn_state(flags=None):
    """"on" or "off", with how it was decided: TensorFlow's own answer where
    its build says, else `TF_ENABLE_ONEDNN_OPTS`, else TensorFlow's default
    rule applied to the CPU flags."""
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    try:
        # TensorFlow has no public API for this; the benchmarks only print it.
        from tensorflow.python.util import _pywrap_util_port

        on = bool(_pywrap_util_port.IsMklEnabled())
        how = "TF_ENABLE_ONEDNN_OPTS=" + setting if setting is not None else "default"
    except (ImportError, AttributeError):
        if setting is not None:
            on, how = setting.strip().lower() in ("1", "true"), "TF_ENABLE_ONEDNN_OPTS=" + setting
        else:
            if flags is None:
                flags = cpu_model_and_flags()[1]
            on, how = any(f in flags for f in _ONEDNN_DEFAULT_FLAGS), "default, from CPU flags"
    return f"{'on' if on else 'off'} ({how})"


def versions():
    """"TensorFlow x, Keras y, bn_zoo z" for the packages importable here."""
    parts = []
    for module, label in (("tensorflow", "TensorFlow"), ("keras", "Keras"), ("bn_zoo", "bn_zoo")):
        try:
            version = getattr(__import__(module), "__version__", None)
        except ImportError:
            continue
        if version is None and module == "bn_zoo":
            from importlib import metadata

            try:
                version = metadata.version("bn_zoo")
            except metadata.PackageNotFoundError:
                version = "source tree"
        parts.append(f"{label} {version}")
    return ", ".join(parts)


def load_average():
    """The 1-minute load average and the CPU count, e.g. "load 1.2 on 2 CPUs"."""
    try:
        load = f"{os.getloadavg()[0]:.1f}"
    except (OSError, AttributeError):
        load = "unknown"
    return f"load {load} on {os.cpu_count()} CPUs"


def describe():
    """One line: CPU model; instruction sets; oneDNN; load; versions."""
    model, flags = cpu_model_and_flags()
    return (f"{model}; {instruction_sets(flags)}; oneDNN {onednn_state(flags)}; "
            f"{load_average()}; {versions()}")


if __name__ == "__main__":
    print(describe())
