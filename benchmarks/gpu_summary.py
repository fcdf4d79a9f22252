"""Summarise a GPU check (scripts/gpu_check.sh) into gpu_check.json and gpu_check.md: the card, torch, the GPU
tests' pass/fail/skip counts, and each benchmark's headline numbers against its target. A part that failed, ran
out of time or printed no RESULT line is recorded as such, with the end of its log.

    python benchmarks/gpu_summary.py PARTS_DIR OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import torch

from results import read_result

BENCHMARKS = ("grouped_gemm", "moe_layer", "train_mfu", "decode")
PARTS = ("gpu_tests", *BENCHMARKS)
TIMEOUT_STATUSES = (124, 137)  # timeout(1)'s: the limit ran out (137: killed after the grace period)
LOG_TAIL_LINES = 30
GEMM_LAYOUT, LAYER_LAYOUT = "e64k8-d2048", "e64k8"  # the targets' layouts: 64 experts (top-8)
TARGETS = {"grouped_gemm": 0.70, "moe_layer": 1.30, "mfu": 0.35}


def device_summary() -> dict:
    cuda = torch.cuda.is_available()
    return {"card": torch.cuda.get_device_name() if cuda else "no CUDA GPU (CPU)", "torch": torch.__version__,
            "cuda": torch.version.cuda, "capability": ".".join(map(str, torch.cuda.get_device_capability()))
            if cuda else None}


def part_record(parts_dir: Path, name: str) -> dict:
    """The part's status ("passed", "failed (...)", "timed out ...", "not run"), its exit status, seconds and
    limit, its RESULT or test counts, and the end of its log when it did not pass."""
    status_path, log_path = parts_dir / f"{name}.status.json", parts_dir / f"{name}.log"
    if not status_path.is_file():
        return {"status": "not run"}
    record = json.loads(status_path.read_text())
    log = log_path.read_text(errors="replace") if log_path.is_file() else ""
    if name == "gpu_tests":
        record["counts"] = test_counts(parts_dir / "gpu_tests.xml")
    else:
        record["result"] = read_result(log)
    record["status"] = part_status(record)
    if record["status"] != "passed":
        record["log_tail"] = log.splitlines()[-LOG_TAIL_LINES:]
    return record


def part_status(record: dict) -> str:
    exit_status = record["exit_status"]
    if exit_status in TIMEOUT_STATUSES:
        return f"timed out after {record['limit_s']} s"
    if exit_status != 0:
        return f"failed (exit status {exit_status})"
    if "result" in record and record["result"] is None:
        return "failed (no RESULT line)"
    return "passed"


def test_counts(junit_xml: Path) -> dict | None:
    """passed, failed, errors, skipped and the skip reasons, from pytest's JUnit XML (None if it wrote none)."""
    if not junit_xml.is_file():
        return None
    cases = list(ElementTree.parse(junit_xml).getroot().iter("testcase"))
    outcome = {kind: [case for case in cases if case.find(kind) is not None]
               for kind in ("failure", "error", "skipped")}
    reasons = sorted({case.find("skipped").get("message", "") for case in outcome["skipped"]})
    return {"passed": len(cases) - sum(map(len, outcome.values())), "failed": len(outcome["failure"]),
            "errors": len(outcome["error"]), "skipped": len(outcome["skipped"]), "skip_reasons": reasons}


def headline(part: str, measure: str, value: str, target: str = "-", met: bool | None = None,
             status: str = "passed") -> dict:
    return {"part": part, "measure": measure, "value": value, "target": target, "met": met, "status": status}


def chosen(layouts: dict, preferred: str) -> str:
    """The target's layout when it was measured, else the first one (a quick run's)."""
    return preferred if preferred in layouts else next(iter(layouts))


def grouped_gemm_headlines(result: dict) -> list[dict]:
    layout = chosen(result["layouts"], GEMM_LAYOUT)
    both = result["layouts"][layout]["both"]
    return [headline("grouped_gemm", f"grouped GEMM / dense matmul of equal FLOPs, {result['dtype']} ({layout}: "
                     f"{result['n_experts'][layout]} experts)",
                     f"{both['ratio']:.2f} ({both['grouped_tflops']:.3g} vs {both['dense_tflops']:.3g} TFLOP/s)",
                     f">= {TARGETS['grouped_gemm']:.2f}", both["ratio"] >= TARGETS["grouped_gemm"])]


def moe_layer_headlines(result: dict) -> list[dict]:
    layout = chosen(result["layouts"], LAYER_LAYOUT)
    times, ratios = result["layouts"][layout]["median_ms"], result["layouts"][layout]["ratio_to_dense"]
    rows = [headline("moe_layer", f"MoE layer fwd+bwd time / dense of equal FLOPs ({layout})",
                     f"{ratios['dsmoe-grouped_mm']:.2f}x ({times['dsmoe-grouped_mm']:.1f} vs {times['dense']:.1f} ms)",
                     f"<= {TARGETS['moe_layer']:.2f}x", ratios["dsmoe-grouped_mm"] <= TARGETS["moe_layer"])]
    measure = f"MoE layer fwd+bwd time / transformers' grouped_mm ({layout})"
    if "hf-grouped_mm" in times:
        ratio = times["dsmoe-grouped_mm"] / times["hf-grouped_mm"]
        rows.append(headline("moe_layer", measure, f"{ratio:.2f}x ({times['dsmoe-grouped_mm']:.1f} vs "
                             f"{times['hf-grouped_mm']:.1f} ms)", "< 1.00x (faster)", ratio < 1.0))
    else:
        rows.append(headline("moe_layer", measure, "-", "< 1.00x (faster)",
                             status=f"skipped: {result['skipped'].get('hf-grouped_mm', 'not measured')}"))
    return rows


def train_mfu_headlines(result: dict) -> list[dict]:
    shape = f"{result['preset']}, batch {result['batch']} x {result['seq_len']}, {result['dtype']}"
    return [headline("train_mfu", f"training MFU ({shape})",
                     f"{result['mfu']:.1%} ({result['achieved_tflops']:.3g} of {result['peak_tflops']:.3g} TFLOP/s, "
                     f"{result['peak_source']})", f">= {TARGETS['mfu']:.0%}", result["mfu"] >= TARGETS["mfu"]),
            headline("train_mfu", f"training tokens/s ({shape})", f"{result['tokens_per_s']:,.0f}")]


def decode_headlines(result: dict) -> list[dict]:
    rows = []
    for batch, measured in result["batches"].items():
        rates = measured["tokens_per_s"]
        value = f"dsmoe {rates['dsmoe']:,.0f}"
        if "hf-generate" in rates:
            value += f" vs transformers {rates['hf-generate']:,.0f} ({rates['dsmoe'] / rates['hf-generate']:.2f}x)"
        missing = result["skipped"].get("hf-generate")
        status = f"passed; transformers skipped: {missing}" if missing else "passed"
        rows.append(headline("decode", f"greedy decode new tokens/s at batch {batch}, {result['dtype']} "
                             "(vs transformers' generate)", value, status=status))
    return rows


HEADLINES = {"grouped_gemm": grouped_gemm_headlines, "moe_layer": moe_layer_headlines,
             "train_mfu": train_mfu_headlines, "decode": decode_headlines}


def tests_headline(record: dict) -> dict:
    counts = record.get("counts")
    value = "-" if counts is None else \
        f"{counts['passed']} passed, {counts['failed'] + counts['errors']} failed, {counts['skipped']} skipped"
    return headline("gpu_tests", "GPU tests (pytest tests/gpu -m gpu)", value, "all pass",
                    None if counts is None else counts["failed"] + counts["errors"] == 0 and counts["passed"] > 0,
                    record["status"])


def benchmark_headlines(name: str, record: dict) -> list[dict]:
    if record["status"] != "passed":
        return [headline(name, "-", "-", status=record["status"])]
    try:
        return HEADLINES[name](record["result"])
    except (KeyError, TypeError, StopIteration) as error:  # a RESULT of another shape than this summary reads
        return [headline(name, "-", "-", status=f"failed (its RESULT line lacks {error!r})")]


def headlines(parts: dict[str, dict], quick: bool) -> list[dict]:
    """One row per headline number; a part without a result gets one row saying why. In a quick run nothing is
    judged against a target (toy sizes on a CPU)."""
    rows = [tests_headline(parts["gpu_tests"])]
    for name in BENCHMARKS:
        rows += benchmark_headlines(name, parts[name])
    if quick:
        rows = [{**row, "met": None} for row in rows]
    return rows


def markdown(summary: dict) -> str:
    device = summary["device"]
    lines = [f"# GPU check ({summary['mode']})", "",
             f"{device['card']}" + (f", sm {device['capability']}" if device["capability"] else "") +
             f"; torch {device['torch']}" + (f", CUDA {device['cuda']}" if device["cuda"] else ""), ""]
    if summary["mode"] == "quick":
        lines += ["A quick run: the same commands at toy sizes on the CPU; no number here measures a target.", ""]
    lines += ["| part | status | measure | value | target | met |", "| --- | --- | --- | --- | --- | --- |"]
    verdicts = {True: "yes", False: "**no**", None: "-"}
    for row in summary["headlines"]:
        lines.append(f"| {row['part']} | {row['status']} | {row['measure']} | {row['value']} | {row['target']} | "
                     f"{verdicts[row['met']]} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parts_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    quick = bool(os.environ.get("QUICK"))
    parts = {name: part_record(parts_dir, name) for name in PARTS}
    summary = {"mode": "quick" if quick else "full", "device": device_summary(), "parts": parts,
               "headlines": headlines(parts, quick)}
    (out_dir / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "gpu_check.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
