"""The report's sections on what the model does with its experts, beyond routing: shared against routed output,
redundancy between experts, routing stability across checkpoints, and the expert-disabling probes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsmoe.analysis import charts
from dsmoe.analysis.report_html import Figure, Section, Table
from dsmoe.analysis.report_sections import layer_keys


def shared_section(numbers: dict, out: Path) -> Section | None:
    norms = numbers.get("shared_vs_routed")
    if not norms:
        return None
    layers = layer_keys(numbers)
    bars = charts.grouped_bars(out / "shared_vs_routed.png", "Output norm of the shared and the routed experts",
                               "mean L2 norm per token", {f"layer {key}": {"shared": norms[key]["shared_norm"],
                                                                           "routed": norms[key]["routed_norm"]}
                                                          for key in layers})
    rows = [[key, norms[key]["shared_norm"], norms[key]["routed_norm"], norms[key]["ratio"]] for key in layers]
    blocks = [Figure("Shared against routed output", bars),
              Table("Norms per layer", ["layer", "shared", "routed", "mean shared / routed"], rows)]
    probe = numbers.get("shared_expert_probe")
    if probe:
        blocks.append(Table("Removing the shared experts", ["loss", "loss without shared experts", "jump"],
                            [[probe["loss"], probe["loss_without_shared"], probe["jump"]]],
                            "Validation loss with every MoE layer's shared experts' output set to zero."))
    return Section("shared", "Shared and routed experts", "How much of each MoE layer's output the always-on shared "
                   "experts carry against the routed ones.", blocks)


def redundancy_section(numbers: dict, out: Path) -> Section | None:
    redundancy = numbers.get("redundancy")
    if not redundancy:
        return None
    per_layer, rows = {}, []
    for key in layer_keys(numbers):
        figures = []
        for kind, what in (("outputs", "outputs on the same inputs"), ("weights", "weights")):
            similarity = redundancy[key][kind]
            png = charts.heatmap(np.array(similarity["matrix"]), out / f"redundancy_{kind}_layer{key}.png",
                                 f"Layer {key}: cosine similarity of expert {what}", "expert", "expert",
                                 "cosine similarity", vmin=-1.0, vmax=1.0, cmap="coolwarm")
            figures.append(Figure(f"Similarity of expert {what}, layer {key}", png))
        per_layer[int(key)] = figures
        rows.append([key, redundancy[key]["outputs"]["mean_off_diagonal"], redundancy[key]["outputs"]["max_off_diagonal"],
                     str(redundancy[key]["outputs"]["max_pair"]), redundancy[key]["weights"]["mean_off_diagonal"],
                     redundancy[key]["weights"]["max_off_diagonal"]])
    table = Table("Redundancy per layer", ["layer", "outputs: mean", "outputs: max", "most similar pair",
                                           "weights: mean", "weights: max"], rows,
                  "Off-diagonal cosine similarities; near 0 means the experts compute different things.")
    return Section("redundancy", "Redundancy between experts", "Whether experts duplicate each other: the similarity of "
                   "their outputs on the same tokens, and of their weights.", [table], per_layer)


def stability_section(numbers: dict, out: Path) -> Section | None:
    stability = numbers.get("stability")
    if not stability:
        return None
    layers, steps = layer_keys(numbers), [entry["step"] for entry in stability]
    lines = {f"layer {key}": (steps, [entry["layers"][key]["changed_share"] for entry in stability]) for key in layers}
    png = charts.curves(out / "routing_stability.png",
                        f"Tokens routed to another expert set than at step {numbers['step']}", "checkpoint step",
                        "share of tokens", lines)
    rows = [[entry["step"], key, entry["layers"][key]["changed_share"], entry["layers"][key]["mean_overlap"],
             entry["layers"][key]["top1_changed_share"]] for entry in stability for key in layers]
    return Section("stability", "Routing stability across checkpoints",
                   "How early routing settles: each kept checkpoint's routing of the same tokens against the analysed "
                   "checkpoint's.", [Figure("Routing changes against the analysed checkpoint", png),
                                     Table("Per checkpoint and layer", ["step", "layer", "expert set changed",
                                                                        "mean overlap of the sets", "top-1 changed"],
                                           rows)])


def disabling_section(numbers: dict, out: Path) -> Section | None:
    curves_by_run = numbers.get("expert_disabling")
    if not curves_by_run:
        return None
    lines = {run: ([point["share"] for point in points], [point["loss"] for point in points])
             for run, points in curves_by_run.items()}
    png = charts.curves(out / "expert_disabling.png", "Disabling the most-routed experts (DeepSeekMoE Fig. 4)",
                        "share of each layer's routed experts disabled (the most-routed first)", "validation loss",
                        lines)
    rows = [[run, point["k"], point["share"], point["loss"], point["loss"] - points[0]["loss"]]
            for run, points in curves_by_run.items() for point in points]
    return Section("disabling", "Expert-disabling probe",
                   "In every MoE layer the k experts that received the most tokens are disabled and each token picks "
                   "its top-K among the others (DeepSeekMoE Sec. 4.5). Runs are compared at equal shares of their "
                   "experts disabled. A steeper rise means the disabled experts held knowledge the others cannot "
                   "stand in for: less redundancy.",
                   [Figure("Loss against disabled experts", png),
                    Table("Loss per run and k", ["run", "experts disabled per layer", "share", "validation loss",
                                                 "rise over none"], rows)])
