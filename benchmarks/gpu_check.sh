#!/usr/bin/env bash
# Everything that needs a GPU, in one go: the GPU tests, then the speed benchmarks on CUDA.
# Run from the repository root on a machine with CUDA:  bash benchmarks/gpu_check.sh
# Takes a few minutes on an H100-class card. Prints the card's name first: record it with the
# numbers (benchmarks/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print('card:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "== GPU tests (pytest -m gpu)"
python -m pytest -m gpu -o addopts="" -q

echo "== one PSP step vs a plain step on CUDA (LeNet5, batch 100)"
python benchmarks/bench_psp_step.py --device cuda --steps 200

echo "== 30 runs together vs one after another: one MNIST-sized epoch each"
python benchmarks/bench_many.py --device cuda --runs 30 --epochs 1 --repeats 1

echo "== 3 runs (none / l2 / PSP) together vs one after another"
python benchmarks/bench_many.py --device cuda --runs 3 --epochs 1 --repeats 2
