"""Writing an analysis: numbers.json, every section's PNGs and the self-contained report.html, into a temporary
directory renamed over the output only once all of it is written (an earlier analysis there survives a failure)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from dsmoe.analysis import report_probe_sections as probe_sections
from dsmoe.analysis import report_sections as sections
from dsmoe.analysis.charts import plot_loss_curve
from dsmoe.analysis.domain_data import routed_summary
from dsmoe.analysis.report_html import Figure, Section, Table, write_report
from dsmoe.atomic import atomic_directory, listed

REPORT = "report.html"
NUMBERS = "numbers.json"
WRITTEN = "files.json"  # the files an analysis wrote: only those are replaced by the next one
SECTIONS = (sections.load_section, sections.domains_section, sections.tokens_section, sections.coactivation_section,
            probe_sections.shared_section, probe_sections.redundancy_section, probe_sections.stability_section,
            probe_sections.disabling_section)


def check_output(out_dir: Path) -> None:
    """Refuse an output directory holding anything but an earlier analysis (replacing it deletes its files): any
    entry its files.json does not list, or, for an analysis from before that record, anything but numbers.json,
    report.html and PNG plots, is the user's and is named."""
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        return
    if not out_dir.is_dir():
        raise ValueError(f"--out {str(out_dir)!r} is a file; choose an empty or new directory")
    if not (out_dir / NUMBERS).is_file():
        held = listed(sorted(path.name for path in out_dir.iterdir()))
        raise ValueError(f"--out {str(out_dir)!r} holds {held} and is not an earlier analysis (no {NUMBERS}); "
                         "choose an empty or new directory")
    foreign = sorted(path.name for path in out_dir.iterdir() if not written_here(out_dir, path))
    if foreign:
        raise ValueError(f"--out {str(out_dir)!r} holds {', '.join(foreign)}, which dsmoe analyze did not write; "
                         "replacing the earlier analysis there would delete it: move it, or choose another --out")


def written_here(out_dir: Path, path: Path) -> bool:
    """Whether `path` in the earlier analysis `out_dir` is one of the files that analysis wrote."""
    record = out_dir / WRITTEN
    if record.is_file():
        return path.name == WRITTEN or path.name in json.loads(record.read_text())["files"]
    return path.is_file() and (path.name in (NUMBERS, REPORT) or path.suffix == ".png")


def overview_section(numbers: dict, out: Path, metrics_path: Path | None) -> Section:
    counts, seq_len = numbers["tokens_per_domain"], numbers["seq_len"]
    rows = [["run", numbers["run"]], ["checkpoint", numbers["checkpoint"]], ["data", numbers["data"]],
            ["domains", ", ".join(numbers["domains"])], ["tokens", routed_summary(counts, seq_len)],
            ["router", numbers["router"]],
            ["routed experts / chosen per token", f"{numbers['n_experts']} / {numbers['top_k']}"],
            ["MoE layers", ", ".join(map(str, numbers["moe_layers"]))]]
    blocks = [Table("What was analysed", ["", ""], rows), domains_table(numbers)]
    if metrics_path is not None and metrics_path.is_file():
        blocks.append(Figure("Training curve", plot_loss_curve(metrics_path, out / "loss_curve.png")))
    return Section("overview", "Overview", "", blocks)


def domains_table(numbers: dict) -> Table:
    """Each domain's tokens as each part of the analysis counts them (domain_data.token_counts)."""
    counts, probed = numbers["tokens_per_domain"], "expert_disabling" in numbers
    columns = ["domain", "tokens read", f"routed (whole windows of {numbers['seq_len']})"]
    columns += ["predicted by the probes", "predicted by dsmoe eval"] if probed else []
    rows = [[domain, count["read"], count["routed"], *([count["probe_scored"], count["eval_scored"]] if probed else [])]
            for domain, count in counts.items()]
    caption = "Every statistic of the routing counts the routed tokens."
    if probed:
        caption += (" The probes' losses predict the tokens of their windows, sampled over each domain (see the probe "
                    "sections); dsmoe eval predicts every token of the same text but the first.")
    return Table("Domains", columns, rows, caption)


def finite(value):
    """`value` with every NaN or infinity (a diverged statistic) replaced by None: strict JSON, which a browser's
    JSON.parse reads."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def write_analysis(out_dir: Path, numbers: dict, metrics_path: Path | None = None) -> dict:
    """numbers.json, the plots and report.html in `out_dir` (see the module docstring); returns the numbers as
    written (non-finite ones as None)."""
    check_output(out_dir)
    numbers = finite(numbers)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(out_dir, replace=True) as temporary:
        (temporary / NUMBERS).write_text(json.dumps(numbers, indent=1, allow_nan=False) + "\n")
        built = [overview_section(numbers, temporary, metrics_path)]
        built += [section for build in SECTIONS if (section := build(numbers, temporary)) is not None]
        write_report(temporary / REPORT, "Expert analysis", f"{numbers['run']} at step {numbers['step']}", built,
                     numbers["moe_layers"], numbers)
        files = sorted(path.name for path in temporary.iterdir())
        (temporary / WRITTEN).write_text(json.dumps({"written_by": "dsmoe analyze", "files": files}, indent=1) + "\n")
    return numbers
