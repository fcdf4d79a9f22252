"""From the analysis numbers (analyze.py's JSON) to the report: each section's PNG charts and tables, drawn into
the output directory. One function per section; each takes the numbers and the directory and returns a Section."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsmoe.analysis import charts
from dsmoe.analysis.report_html import Figure, Section, Table

CONTEXT_CHARS = 40  # characters of context shown on each side of a token in the tables


def dash(value):
    """A table cell for a number that may be missing."""
    return "-" if value is None else value


def spans_magnitudes(matrix: np.ndarray, ratio: float = 30.0) -> bool:
    """Whether the cells span enough (a zero, or max/min of the positive ones over `ratio`) for a log colour scale."""
    positive = matrix[matrix > 0]
    return bool((matrix <= 0).any() or (positive.size and positive.max() / positive.min() > ratio))


def layer_keys(numbers: dict) -> list[str]:
    return [str(layer) for layer in numbers["moe_layers"]]


def load_section(numbers: dict, out: Path) -> Section:
    layers = layer_keys(numbers)
    loads = np.array([numbers["layers"][key]["load"]["tokens_per_expert"] for key in layers])
    heatmap = charts.heatmap(loads, out / "load_heatmap.png", "Tokens routed to each expert", "routed expert",
                             "MoE layer", "token-expert pairs", row_labels=layers, log=spans_magnitudes(loads))
    rows = []
    for key in layers:
        load = numbers["layers"][key]["load"]
        entropy = load["router_entropy"]
        per_batch = load["batch_max_vio"]  # None: the data held no whole training batch
        rows.append([key, load["cv"], load["max_over_mean"], load["max_vio"], dash(per_batch["mean"]),
                     dash(per_batch["max"]), load["p5"], load["p95"], len(load["dead"]),
                     load["normalised_load_entropy"], dash(entropy and entropy["mean"])])
    blocks = [Figure("Expert load per layer", heatmap, "Each cell counts the tokens a layer sent to an expert over "
                     "the analysed data; grey cells are experts that received none (dead)."),
              Table("Balance per layer", ["layer", "CV", "max/mean", "MaxVio global", "MaxVio batch (mean)",
                                          "MaxVio batch (max)", "p5 load/mean", "p95 load/mean", "dead experts",
                                          "load entropy / log E", "router entropy (nats)"], rows,
                    "MaxVio = (max load - mean load) / mean load (Wang et al. 2024): global over all the data, batch "
                    "over each training batch's worth of tokens.")]
    history = numbers.get("over_training") or {}
    if history:
        panels = [(name, {f"layer {key}": (series["step"], series[field]) for key, series in history.items()})
                  for name, field in (("CV", "cv"), ("MaxVio (batch)", "max_vio"), ("dead experts", "dead"))]
        blocks.append(Figure("Balance over training", charts.line_panels(
            out / "load_over_training.png", "Expert load over training (from metrics.jsonl)", "optimizer step",
            panels), "Each logged step's own batch: CV and MaxVio of its tokens per expert, and experts that got "
            "no token in that step."))
    return Section("load", "Load balance", "How evenly each MoE layer spreads its tokens over its routed experts.",
                   blocks)


def domains_section(numbers: dict, out: Path) -> Section:
    layers, names = layer_keys(numbers), numbers["domains"]
    per_layer = {}
    for key in layers:
        domains = numbers["layers"][key]["domains"]
        share = np.array(domains["share"])
        png = charts.heatmap(share, out / f"domain_share_layer{key}.png",
                             f"Layer {key}: share of each domain's routing per expert", "routed expert", "domain",
                             "share of the domain's pairs", row_labels=names, log=spans_magnitudes(share))
        per_layer[int(key)] = [Figure(f"Routing share by domain, layer {key}", png,
                                      "Rows sum to 1; an expert specialised in a domain lights up in its row only.")]
    xs = [int(key) for key in layers]
    nmi_by_layer = {key: numbers["layers"][key]["domains"]["nmi"] for key in layers}
    chance_by_layer = {key: numbers["layers"][key]["domains"]["nmi_shuffled"] for key in layers}
    nmi = charts.curves(out / "domain_nmi.png", "Mutual information between domain and expert choice", "MoE layer",
                        "normalised mutual information (0 to 1)", {"NMI": (xs, list(nmi_by_layer.values()))},
                        integer_x=True, references={"chance (domains shuffled)": (xs, list(chance_by_layer.values()))},
                        ylim=(0.0, None))
    top = charts.grouped_bars(out / "domain_top10.png", "Share of each domain's routing held by its top-10% experts",
                              "share of pairs", {f"layer {k}": numbers["layers"][k]["domains"]["top10_share"]
                                                 for k in layers})
    uniform = np.ceil(0.1 * numbers["n_experts"]) / numbers["n_experts"]
    return Section("domains", "Specialisation by domain",
                   "Which experts each domain's tokens go to. NMI is 1 when every domain has experts of its own and "
                   "0 when the choice of expert says nothing about the domain.",
                   [Figure("Domain / expert NMI per layer", nmi, "The axis starts at 0 (NMI spans 0 to 1). The "
                           "dashed line is the NMI of the same counts with the domains dealt to the token-expert pairs "
                           "at random: what chance alone gives with this many pairs."),
                    Table("NMI per layer", ["layer", "NMI", "chance (domains shuffled)", "NMI / chance"],
                          [[key, nmi_by_layer[key], chance_by_layer[key],
                            dash(nmi_by_layer[key] / chance_by_layer[key] if chance_by_layer[key] else None)]
                           for key in layers]),
                    Figure("Top-10% expert share", top, f"Uniform routing would give {uniform:.2f} for every domain.")],
                   per_layer)


def shorten(text: str, keep_end: bool) -> str:
    text = text.replace("\n", "⏎")
    if len(text) <= CONTEXT_CHARS:
        return text
    return "…" + text[-CONTEXT_CHARS:] if keep_end else text[:CONTEXT_CHARS] + "…"


def in_context(hit: dict) -> str:
    return f"{shorten(hit['before'], True)}⟦{hit['token'].replace(chr(10), '⏎')}⟧{shorten(hit['after'], False)}"


def tokens_section(numbers: dict, out: Path) -> Section:
    layers = layer_keys(numbers)
    per_layer = {}
    for key in layers:
        experts = numbers["layers"][key]["experts"]
        total = max(1, sum(expert["load"] for expert in experts))
        rows = [[expert["expert"], expert["load"] / total,
                 " · ".join(f"{hit['token']!r} x{hit['ratio']:.1f}" for hit in expert["over_represented"][:5]) or "-",
                 "\n".join(f"{hit['weight']:.3f} [{hit['domain']}, #{hit['in_window']} in window] {in_context(hit)}"
                           for hit in expert["top_weight"][:3]) or "-"] for expert in experts]
        per_layer[int(key)] = [Table(f"What each expert of layer {key} fires on",
                                     ["expert", "load share", "most over-represented tokens (x corpus frequency)",
                                      "highest routing weights, in context (⟦token⟧)"], rows)]
    bin_edges = np.array(numbers["layers"][layers[0]]["vocabulary"]["bin_edges"])
    histogram = charts.histogram(out / "vocabulary_specialisation.png", "Vocabulary specialisation",
                                 "share of a token id's occurrences sent to its most-used expert", "token ids",
                                 {f"layer {k}": np.array(numbers["layers"][k]["vocabulary"]["histogram"])
                                  for k in layers}, bin_edges)
    rows = [[key, numbers["layers"][key]["vocabulary"]["weighted_mean"], numbers["layers"][key]["vocabulary"]["mean"]]
            for key in layers]
    return Section("tokens", "What experts fire on",
                   "Per expert, the tokens most over-represented in its routing against their corpus frequency, and "
                   "the tokens it got the highest routing weight for, with their context.",
                   [Figure("Vocabulary specialisation (OLMoE)", histogram, "1: every occurrence of a token id goes "
                           "to the same expert."),
                    Table("Vocabulary specialisation per layer", ["layer", "frequency-weighted", "mean over ids"],
                          rows)], per_layer)


def coactivation_section(numbers: dict, out: Path) -> Section:
    layers = layer_keys(numbers)
    per_layer = {}
    for key in layers:
        png = charts.heatmap(np.array(numbers["layers"][key]["coactivation"]["ratio"]),
                             out / f"coactivation_layer{key}.png", f"Layer {key}: expert co-activation",
                             "also chosen: expert j", "tokens that chose expert i", "share of i's tokens also at j",
                             vmin=0.0, cmap="magma")
        per_layer[int(key)] = [Figure(f"Co-activation, layer {key}", png)]
    rows = [[key, numbers["layers"][key]["coactivation"]["distinct"], numbers["layers"][key]["coactivation"]["possible"],
             numbers["layers"][key]["coactivation"]["tokens"]] for key in layers]
    return Section("coactivation", "Co-activation",
                   "How often experts are chosen together, and how many of the possible expert combinations tokens use.",
                   [Table("Expert combinations used", ["layer", "distinct combinations", "possible C(N, K)",
                                                       "tokens with all K pairs"], rows)], per_layer)
