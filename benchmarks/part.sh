# Sourced by benchmarks/gpu_suite.sh and scripts/gpu_check.sh, which set $out.
# part NAME LIMIT_SECONDS COMMAND...: run one part under its own time limit, its output to $out/NAME.log and its exit
# status, seconds and limit to $out/NAME.status.json, so that gpu_summary.py records a failed or timed-out part as such.
part() {
  local name=$1 limit=$2 start=$SECONDS status
  shift 2
  echo "== $name: $*"
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$out/$name.log"
  status=${PIPESTATUS[0]}
  printf '{"exit_status": %d, "seconds": %d, "limit_s": %d}\n' "$status" $((SECONDS - start)) "$limit" \
    >"$out/$name.status.json"
  echo "== $name exit status $status"
}
