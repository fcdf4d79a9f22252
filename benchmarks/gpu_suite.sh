#!/usr/bin/env bash
# The GPU checks of the performance work in one run, for a lent GPU machine (an H200 here): grouped GEMM
# throughput vs dense matmul, the MoE layer vs dense-equal-FLOPs and transformers in bf16, and training MFU of
# the paper-2b preset. Each part has a time limit so one slow part cannot eat the others; logs go to $OUT (or
# runs/gpu-suite). It runs dsmoe from src/ with the machine's own torch and transformers (nothing to install).
#
#   bash benchmarks/gpu_suite.sh            # everything, about 6 minutes on an H200
#   QUICK=1 bash benchmarks/gpu_suite.sh    # CPU smoke run of the same commands at toy sizes
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
out=${OUT:-runs/gpu-suite}
mkdir -p "$out"
export PYTHONPATH="$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())" |
  tee "$out/device.log"

part() {  # part NAME LIMIT_SECONDS SCRIPT ARGS...: run one benchmark, log it, report its exit status
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*"
  timeout "$limit" "$PYTHON" "$@" 2>&1 | tee "$out/$name.log"
  echo "== $name exit status ${PIPESTATUS[0]}"
}

if [ -n "${QUICK:-}" ]; then
  part grouped_gemm 120 benchmarks/grouped_gemm.py --quick --device cpu
  part moe_layer 300 benchmarks/moe_layer.py --quick --layouts e16k2 --impls dense dsmoe-grouped_mm hf-grouped_mm
  part train_mfu 120 benchmarks/train_mfu.py --quick --device cpu
  exit 0
fi
part grouped_gemm 90 benchmarks/grouped_gemm.py --device cuda --dtype bfloat16 --tokens 16384
part moe_layer 180 benchmarks/moe_layer.py --device cuda --dtype bfloat16 --tokens 16384 --hidden 2048 \
  --impls dense dsmoe-grouped_mm hf-grouped_mm --repeats 10 --memory
part train_mfu 120 benchmarks/train_mfu.py --preset paper-2b --device cuda --dtype bfloat16 --batch 8 --seq-len 2048
