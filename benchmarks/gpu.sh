#!/usr/bin/env bash
# Time to 99% on a GPU, in one short run (about a minute on a current GPU): writes benchmarks/gpu_results.md.
# From the project root, with the package installed (make install) and MNIST_NBDEV_DATA pointing at the data.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec python benchmarks/gpu.py "$@"
