#!/usr/bin/env bash
# Separation on one GPU, in one go (about 6 minutes on an H100-class GPU; stops at 8):
# forward passes by batch size and precision, 8 concurrent 3-minute tracks through the
# service against `python -m demucs.separate`, two 0.5-GPU worker replicas on one device.
# Needs a CUDA machine with the project installed (`make venv`); writes the "gpu"
# section of docs/BENCHMARKS.md. Extra arguments go to bench/gpu.py (--device cpu checks
# the script on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv
exec timeout 480 "$PYTHON" -m bench.gpu "$@"
