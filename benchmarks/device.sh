#!/usr/bin/env bash
# bn_zoo on a GPU, one table in at most 8 minutes: the BN layer against
# cuDNN's fused kernel (float32, float16; training, inference), BN-Inception
# training img/s at 224² under mixed_float16 with and without XLA against the
# Keras-BN build, and the export's serving latency (benchmarks/device.py).
#
#   bash benchmarks/device.sh           # on a machine with an NVIDIA GPU
#   bash benchmarks/device.sh --small   # toy sizes on the CPU: checks the script
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
LIMIT_S=480  # the whole run; device.py budgets its sections within it

if [[ " $* " != *" --small "* ]]; then
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "ERROR (DeviceError): nvidia-smi not found: this machine has no NVIDIA GPU" \
         "(or no driver). Run on a GPU machine, or pass --small to check the script" \
         "on the CPU." >&2
    exit 1
  fi
  if ! nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; then
    echo "ERROR (DeviceError): nvidia-smi cannot reach a GPU (see its message above)." >&2
    exit 1
  fi
fi
# Leaves a minute of the limit for the sections device.py skips and the table.
status=0
timeout --kill-after=10 "${LIMIT_S}" \
  python benchmarks/device.py --budget "$((LIMIT_S - 60))" "$@" || status=$?
if [ "${status}" -eq 124 ] || [ "${status}" -eq 137 ]; then
  echo "ERROR (Timeout): benchmarks/device.py ran past ${LIMIT_S} s; the rows above" \
       "are what it measured." >&2
fi
exit "${status}"
