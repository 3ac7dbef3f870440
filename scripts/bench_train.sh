#!/usr/bin/env bash
# MLX vs PyTorch (transformers) on the same work — issue 11's benchmark, the way we run it.
#
#   scripts/bench_train.sh            --quick run (under 5 minutes on 2 cores), JSON to benchmarks/results/train.json
#   scripts/bench_train.sh --full     every round (longer)
#   scripts/bench_train.sh --rows student-4l teacher-minilm   (any bench_train.py option passes through)
#
# Why a wrapper: when the machine is busy (1-minute load above half the cores) MKL's OpenMP threads
# collapse under contention on both sides, so unless MKL_NUM_THREADS is already set we pin both
# frameworks to one thread and say so. Set MKL_NUM_THREADS / OMP_NUM_THREADS yourself to override.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=(--quick)
if [[ "${1:-}" == "--full" ]]; then
  mode=()
  shift
fi
if [[ -z "${MKL_NUM_THREADS:-}" ]]; then
  read -r load cores < <(python -c "import os; print(round(os.getloadavg()[0], 1), os.cpu_count())")
  if python -c "import sys; sys.exit(0 if $load > $cores / 2 else 1)"; then
    export MKL_NUM_THREADS=1 OMP_NUM_THREADS=1
    echo "bench_train.sh: busy machine (load $load on $cores cores): one thread per framework" >&2
  fi
fi
exec python benchmarks/bench_train.py "${mode[@]}" "$@"
