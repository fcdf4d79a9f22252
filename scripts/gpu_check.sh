#!/usr/bin/env bash
# Everything a lent GPU machine should check, in one run of at most 8 minutes on one H100 or H200: the GPU tests
# (pytest tests/gpu -m gpu), then the benchmarks of benchmarks/gpu_suite.sh; benchmarks/gpu_summary.py then writes
# gpu_check.json and gpu_check.md into $OUT (or runs/gpu-check): the card, torch, the tests' pass/fail/skip counts and
# each benchmark's headline numbers against their targets. Every part has its own time limit, and one that fails or
# runs out of time is recorded as such. The parts' logs are kept in parts.tar.gz beside them.
#
# It runs dsmoe from src/ with the machine's own torch, installing nothing: pytest and tomli-w must be importable
# (a pure-Python wheel of either put on PYTHONPATH will do); without transformers its comparisons are skipped.
#
#   bash scripts/gpu_check.sh            # on the GPU machine
#   QUICK=1 bash scripts/gpu_check.sh    # CPU smoke run of the same commands at toy sizes (the GPU tests skip)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
final=${OUT:-runs/gpu-check}
out="$final/parts"
rm -rf "$out" && mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
source benchmarks/part.sh
"$PYTHON" -c "import tomli_w" 2>/dev/null ||
  echo "warning: tomli_w is not importable: the GPU tests that write a run will fail (put its wheel on PYTHONPATH)"

part gpu_tests 120 "$PYTHON" -m pytest tests/gpu -m gpu -p no:cacheprovider -rA --junitxml="$out/gpu_tests.xml"
OUT="$out" bash benchmarks/gpu_suite.sh
"$PYTHON" benchmarks/gpu_summary.py "$out" "$final"
status=$?
tar -czf "$final/parts.tar.gz" -C "$final" parts && rm -rf "$out"
exit $status
