"""The report of a reproduction suite, from the runner's results dict (OUT/results.json, parsed): per-variant mean
and seed spread, whether our ordering of the variants agrees with the paper's, and report.md with its figures.

The figures go into out_dir/report_figures/, renamed into place as one directory, and report.md is written
atomically after them; a failure while drawing or writing leaves the previous report as it was, and nothing else
in out_dir (results.json, the runs) is touched. A report_figures/ holding anything but the figures is refused, naming
it, as replacing it would delete it."""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

from dsmoe.atomic import atomic_directory, atomic_file, listed
from dsmoe.reproduce.suite_dir import FIGURES, REPORT, foreign_figures
from dsmoe.reproduce.suite_figures import draw_figures

HOW_TO_READ = (
    "The paper trained its models at about 2B parameters on the Pile; these runs are a small scale on a small "
    "data set, so the absolute losses are not comparable with the paper's and are not meant to be. What can agree "
    "is the ordering of the variants, and whether each gap is larger than the spread between seeds. With one seed "
    "there is no spread to compare against, so a gap of any size may be noise. Matched variants activate the FFN "
    "they state in standard FFNs of width F (table1: Dense, Hash and Switch 1F, GShard and DeepSeekMoE 2F, as in "
    "the paper). Variants marked as references are deliberately larger (their activated parameters are not "
    "matched) and show what extra compute buys.")


def mean_and_std(values: list[float]) -> tuple[float | None, float | None]:
    """The mean and the sample standard deviation (ddof=1; 0 for a single value; None for none)."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summary_rows(results: dict) -> list[dict]:
    """One row per variant, in the runner's order: name, label, matched, activated_f, description, params, seeds,
    the mean and std over seeds of val_loss and val_bpb, and the paper's value (None where the paper gives none)."""
    rows = []
    for variant in results["variants"]:
        row = {key: variant.get(key) for key in ("name", "label", "matched", "activated_f", "description", "params")}
        row["seeds"] = len(variant["runs"])
        for metric in ("val_loss", "val_bpb"):
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean_and_std([run[metric] for run in variant["runs"]])
        row["paper_value"] = variant.get("paper_value")
        rows.append(row)
    return rows


def pair_note(better: dict, worse: dict) -> dict:
    """How our runs order one adjacent pair of the paper's ranking (`better` has the lower loss in the paper), and
    whether our gap exceeds the seed spread (|mean difference| > std_better + std_worse)."""
    gap = abs(better["val_loss_mean"] - worse["val_loss_mean"])
    agrees = better["val_loss_mean"] < worse["val_loss_mean"]
    note = {"better": better["name"], "worse": worse["name"], "agrees": agrees, "gap": gap}
    words = f"{better['name']} < {worse['name']}: {'agrees' if agrees else 'disagrees'}, gap {gap:.3f}"
    if min(better["seeds"], worse["seeds"]) < 2:
        note.update(spread=None, significant=None, words=f"{words}; one seed: no spread measured")
        return note
    spread = better["val_loss_std"] + worse["val_loss_std"]
    significant = gap > spread
    relation = "significant" if significant else "within the seed spread"
    note.update(spread=spread, significant=significant,
                words=f"{words} {'>' if significant else '<='} spread {spread:.3f} ({relation})")
    return note


def ordering_verdict(results: dict) -> dict:
    """Our order (by mean val_loss) of the variants the paper ranks and we ran, against the paper's: `exact`
    agreement, `concordant_pairs` of `pairs` in the same order (Kendall-style; `pair_agreement` their fraction,
    None with under two variants), `missing` (ranked by the paper but not run), and per adjacent pair of the
    paper's order a `pair_note` with its plain-words `words`."""
    rows = {row["name"]: row for row in summary_rows(results) if row["seeds"]}
    paper_order = [name for name in results.get("expected_order") or [] if name in rows]
    our_order = sorted(paper_order, key=lambda name: rows[name]["val_loss_mean"])
    pairs = list(itertools.combinations(paper_order, 2))
    concordant = sum(rows[a]["val_loss_mean"] < rows[b]["val_loss_mean"] for a, b in pairs)
    # a tie counts as disagreeing, so `exact` is True only when every pair is strictly in the paper's order
    return {"paper_order": paper_order, "our_order": our_order, "exact": concordant == len(pairs),
            "concordant_pairs": concordant, "pairs": len(pairs),
            "pair_agreement": concordant / len(pairs) if pairs else None,
            "missing": [name for name in results.get("expected_order") or [] if name not in rows],
            "adjacent": [pair_note(rows[a], rows[b]) for a, b in itertools.pairwise(paper_order)]}


def number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def mean_with_std(mean: float | None, std: float | None, seeds: int) -> str:
    return number(mean) if seeds < 2 else f"{number(mean)} ± {number(std)}"


def table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table, numbers right-aligned."""
    align = ["---:" if index else "---" for index in range(len(header))]
    return [f"| {' | '.join(header)} |", f"| {' | '.join(align)} |"] + [f"| {' | '.join(map(str, row))} |"
                                                                        for row in rows]


def variant_name(row: dict) -> str:
    return f"{row['label']} (`{row['name']}`)" + ("" if row["matched"] else " — reference")


def params_section(rows: list[dict]) -> list[str]:
    """Total, activated and FFN-activated parameters per variant, and whether the matched ones stating the same
    activated FFN (in F) activate equal FFN parameters."""
    lines = ["## Parameters", ""]
    lines += table(["variant", "matched", "total", "activated", "FFN activated", "FFN per layer"],
                   [[variant_name(row), "yes" if row["matched"] else "no"]
                    + [f"{row['params'][key]:,}" for key in ("total", "activated", "ffn_activated")]
                    + [ffn_per_layer(row["params"])] for row in rows])
    groups: dict[float | None, list[dict]] = {}
    for row in rows:
        if row["matched"]:
            groups.setdefault(row["activated_f"], []).append(row)
    verdicts = [group_verdict(f, group) for f, group in groups.items()] or ["No variant is marked as matched."]
    return lines + [""] + verdicts + [""]


def ffn_per_layer(params: dict) -> str:
    """The FFN a variant activates of the FFN it holds, per layer in F ("—" in results of old runs)."""
    if "ffn_activated_f" not in params:
        return "—"
    return f"{params['ffn_activated_f']:g}F of {params['ffn_total_f']:g}F"


def group_verdict(activated_f: float | None, group: list[dict]) -> str:
    """One line on the matched variants stating `activated_f` (None: unstated, as in results of old runs)."""
    counts = {row["params"]["ffn_activated"] for row in group}
    at = "" if activated_f is None else f" at {activated_f:g}F"
    labels = ", ".join(row["label"] for row in group)
    if len(counts) == 1:
        return f"The matched variants{at} ({labels}) activate the same FFN parameters per token ({counts.pop():,})."
    return f"The matched variants{at} ({labels}) do NOT activate equal FFN parameters: {sorted(counts)}."


def results_section(results: dict, rows: list[dict]) -> list[str]:
    """Mean ± std over seeds of validation loss and bits per byte, with the paper's value beside."""
    metric = results["paper"]["metric"]
    lines = ["## Results", ""]
    lines += table(["variant", "val loss", "val bpb", f"paper ({metric})", "seeds"],
                   [[variant_name(row), mean_with_std(row["val_loss_mean"], row["val_loss_std"], row["seeds"]),
                     mean_with_std(row["val_bpb_mean"], row["val_bpb_std"], row["seeds"]), number(row["paper_value"]),
                     row["seeds"]] for row in rows])
    several = max(row["seeds"] for row in rows) > 1
    ours = "mean ± sample std over seeds" if several else "one seed per variant, so no spread"
    return lines + ["", f"Paper values: {results['paper']['source']}. Ours: {ours}.", ""]


def ordering_section(verdict: dict) -> list[str]:
    """The paper's order beside ours, the pair agreement, and one plain-words line per adjacent pair."""
    lines = ["## Ordering", ""]
    if verdict["missing"]:
        lines += [f"Ranked by the paper but not run here: {', '.join(verdict['missing'])}.", ""]
    if len(verdict["paper_order"]) < 2:
        return lines + ["The paper ranks fewer than two of the variants run here: no ordering to compare.", ""]
    lines += [f"- Paper (lowest loss first): {' < '.join(verdict['paper_order'])}",
              f"- Ours (by mean val loss): {' < '.join(verdict['our_order'])}",
              f"- Same order exactly: {'yes' if verdict['exact'] else 'no'}; pairs in the same order: "
              f"{verdict['concordant_pairs']} of {verdict['pairs']} ({verdict['pair_agreement']:.0%})", "",
              "Adjacent pairs of the paper's order (significant: the gap exceeds the sum of the two seed stds):", ""]
    return lines + [f"- {note['words']}" for note in verdict["adjacent"]] + [""]


def markdown(results: dict, rows: list[dict], figures: dict[str, str]) -> str:
    """The whole report.md text; `figures` ({file name: caption}) are linked relative to report.md."""
    budget = f"{results['budget_value']} {results['budget']} per run"
    lines = [f"# {results['title']}", "", f"Command: `{results['command']}`", "",
             f"Scale: {results['scale']} · budget: {budget} · data: {results['data']} · "
             f"compared with: {results['paper']['source']}", "", "## How to read this", "", HOW_TO_READ, ""]
    lines += params_section(rows) + results_section(results, rows) + ordering_section(ordering_verdict(results))
    lines += ["## Figures", ""]
    for name, caption in figures.items():
        lines += [f"### {caption}", "", f"![{caption}]({FIGURES}/{name})", ""]
    return "\n".join(lines)


def write_report(results: dict, out_dir: str | Path) -> Path:
    """report.md and its figures (report_figures/*.png) in `out_dir`, replacing an earlier report atomically (see
    the module docstring); returns the path of report.md."""
    out_dir = Path(out_dir)
    foreign = foreign_figures(out_dir)
    if foreign:
        raise ValueError(f"{out_dir} holds {listed(foreign)}, which no report wrote; the next report replaces "
                         f"{FIGURES}/ whole: move it")
    rows = summary_rows(results)
    with atomic_directory(out_dir / FIGURES, replace=True) as figures_dir:
        text = markdown(results, rows, draw_figures(results, rows, figures_dir))
    with atomic_file(out_dir / REPORT) as temporary:
        temporary.write_text(text)
    return out_dir / REPORT
