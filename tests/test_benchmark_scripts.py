"""The benchmark scripts still run (at toy sizes on the CPU), so a GPU lease is not spent finding a broken one.
They print measurements, which are not checked here: benchmarks, not tests, judge speed."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SMOKE_RUNS = {
    "grouped_gemm": (["grouped_gemm.py", "--quick", "--device", "cpu"], "grouped / dense"),
    "train_mfu": (["train_mfu.py", "--quick", "--device", "cpu"], "MFU"),
    "moe_layer": (["moe_layer.py", "--quick", "--layouts", "e64k8", "--impls", "dense", "dsmoe-grouped_mm",
                   "--repeats", "1"], "median time / dense median"),
    "balance_scope": (["balance_scope.py", "--quick"], "time / micro_batch"),
    "comm_volume": (["comm_volume.py", "--skip-runs"], "predicted forward all-to-all"),
    "demo_step": (["demo_step.py", "--warmup", "1", "--repeats", "1"], "DeepSeekMoE tokens/s / dense tokens/s"),
}


@pytest.mark.parametrize("name", SMOKE_RUNS)
def test_benchmark_script_runs_at_toy_size(name):
    argv, expected = SMOKE_RUNS[name]
    finished = subprocess.run([sys.executable, str(BENCHMARKS / argv[0]), *argv[1:]], capture_output=True, text=True,
                              timeout=300, cwd=BENCHMARKS.parent)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert expected in finished.stdout
