"""The line each benchmark of the GPU suite ends with, `RESULT {json}`, that gpu_summary.py reads back from its log;
and whether transformers, the other side of some comparisons, is here."""

from __future__ import annotations

import json
import math

RESULT_PREFIX = "RESULT "


def print_result(benchmark: str, **values) -> None:
    """One machine-readable line of the headline numbers (NaN, a measurement that was not taken, as null)."""
    print(RESULT_PREFIX + json.dumps({"benchmark": benchmark, **without_nan(values)}), flush=True)


def without_nan(value):
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_result(log: str) -> dict | None:
    """The last RESULT line of a benchmark's output, or None when it printed none."""
    lines = [line for line in log.splitlines() if line.startswith(RESULT_PREFIX)]
    return json.loads(lines[-1].removeprefix(RESULT_PREFIX)) if lines else None


def transformers_missing() -> str | None:
    """Why transformers' side of a comparison cannot run here, or None when it can."""
    try:
        import transformers  # noqa: F401
    except ImportError as error:
        return f"transformers is not installed ({error})"
    return None


def transformers_label() -> str:
    """transformers' version for a benchmark's header line, or why its comparisons are skipped."""
    missing = transformers_missing()
    if missing:
        return f"transformers comparisons skipped: {missing}"
    import transformers
    return f"transformers {transformers.__version__}"
