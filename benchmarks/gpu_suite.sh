#!/usr/bin/env bash
# The GPU checks of the performance work in one run, for a lent GPU machine (an H100 or H200): grouped GEMM
# throughput vs dense matmul, the MoE layer vs dense-equal-FLOPs and transformers in bf16, training MFU of the
# paper-2b preset, and decoding vs transformers' generate. Each part has a time limit so one slow part cannot eat the
# others; each ends with a `RESULT {json}` line, and its log and exit status go to $OUT (or runs/gpu-suite), where
# benchmarks/gpu_summary.py reads them. It runs dsmoe from src/ with the machine's own torch (nothing to install);
# without transformers its comparisons are recorded as skipped. scripts/gpu_check.sh runs it after the GPU tests.
#
#   bash benchmarks/gpu_suite.sh            # everything, at most 6 minutes
#   QUICK=1 bash benchmarks/gpu_suite.sh    # CPU smoke run of the same commands at toy sizes
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
out=${OUT:-runs/gpu-suite}
mkdir -p "$out"
export PYTHONPATH="$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
source benchmarks/part.sh
"$PYTHON" -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())" |
  tee "$out/device.log"

if [ -n "${QUICK:-}" ]; then
  part grouped_gemm 120 "$PYTHON" benchmarks/grouped_gemm.py --quick --device cpu
  part moe_layer 180 "$PYTHON" benchmarks/moe_layer.py --quick --layouts e64k8 --impls dense dsmoe-grouped_mm \
    hf-grouped_mm --repeats 1
  part train_mfu 120 "$PYTHON" benchmarks/train_mfu.py --quick --device cpu
  part decode 120 "$PYTHON" benchmarks/decode.py --quick --device cpu
  exit 0
fi
part grouped_gemm 60 "$PYTHON" benchmarks/grouped_gemm.py --device cuda --dtype bfloat16 --tokens 16384
part moe_layer 120 "$PYTHON" benchmarks/moe_layer.py --device cuda --dtype bfloat16 --tokens 16384 --hidden 2048 \
  --impls dense dsmoe-grouped_mm hf-grouped_mm --repeats 10 --memory
part train_mfu 100 "$PYTHON" benchmarks/train_mfu.py --preset paper-2b --device cuda --dtype bfloat16 --batch 8 \
  --seq-len 2048
part decode 60 "$PYTHON" benchmarks/decode.py --device cuda --dtype bfloat16 --batches 1 32 --repeats 3
