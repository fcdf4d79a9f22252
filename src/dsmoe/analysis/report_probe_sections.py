"""The report's sections on what the model does with its experts, beyond routing: shared against routed output,
redundancy between experts, routing stability across checkpoints, and the expert-disabling probes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsmoe.analysis import charts
from dsmoe.analysis.report_html import Figure, Section, Table
from dsmoe.analysis.report_sections import dash, layer_keys


NOISE_SE = 2  # a change is told from noise when it exceeds this many standard errors (about 95%, two-sided)


def noise(standard_error: float | None) -> float | None:
    """The half-width a change must exceed to be told from noise (None: no estimate, one window)."""
    return None if standard_error is None else NOISE_SE * standard_error


def noise_cells(change: float, standard_error: float | None) -> list:
    """A change's table cells: the noise it must exceed, and whether it does."""
    half_width = noise(standard_error)
    return [dash(half_width), "-" if half_width is None else "yes" if abs(change) > half_width else "no"]


def probe_measure(numbers: dict) -> str:
    """How the probes' losses are measured, and why they differ from `dsmoe eval`'s on the same text."""
    counts, seq_len = numbers["tokens_per_domain"], numbers["seq_len"]
    probed = sum(count["probe_scored"] for count in counts.values())
    evaluated = sum(count["eval_scored"] for count in counts.values())
    capped = [domain for domain, count in counts.items() if count["probe_scored"] <= count["eval_scored"] - seq_len]
    if len(capped) == len(counts) > 1:
        weighting = (" Every domain has more windows than that, so each weighs alike here, and by its size in dsmoe "
                     "eval.")
    elif capped:
        weighting = (f" The cap leaves windows of {', '.join(capped)} out, so they weigh less here than in dsmoe eval, "
                     "which weighs each domain by its size.")
    else:
        weighting = ""
    return (f"Each loss is the mean next-token loss (nats) over {probed // seq_len:,} windows of {seq_len} tokens "
            f"({probed:,} tokens predicted), at most --probe-batches={numbers['probe_batches']} batches of "
            f"{numbers['batch_size']} windows per domain spread over its text, in float32. It is a sample: dsmoe eval "
            f"on the same text predicts all {evaluated:,} tokens (every window, and each domain's last partial one), "
            f"so its loss differs.{weighting} On a GPU with bf16, dsmoe eval also runs in the run's train.dtype, not "
            "float32.")


def noise_verdict(curves_by_run: dict) -> str:
    """Which rises exceed their noise, in words."""
    told, untold = [], []
    for run, points in curves_by_run.items():
        for point in points[1:]:
            half_width = noise(point["rise_se"])
            (told if half_width is not None and abs(point["rise"]) > half_width else untold).append(
                f"{run} at k={point['k']}")
    if not untold:
        return "Every rise exceeds its noise."
    if not told:
        return ("No rise exceeds its noise: at this sample the curve cannot be told from flat (more --probe-batches "
                "narrow the bars).")
    return f"Beyond noise: {', '.join(told)}. Within it (not told from no change): {', '.join(untold)}."


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
        blocks.append(Table("Removing the shared experts", ["loss", "loss without shared experts", "jump",
                                                            f"noise (± {NOISE_SE} SE)", "beyond noise"],
                            [[probe["loss"], probe["loss_without_shared"], probe["jump"],
                              *noise_cells(probe["jump"], probe["jump_se"])]],
                            "The loss with every MoE layer's shared experts' output set to zero. "
                            + probe_measure(numbers)))
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
    if len(stability) == 1:  # one comparison: bars with their values, not a lone dot
        changes = stability[0]["layers"]
        png = charts.grouped_bars(out / "routing_stability.png", f"Tokens routed otherwise at step {steps[0]} than at "
                                  f"step {numbers['step']} (analysed)", "share of tokens",
                                  {f"layer {key}": {"expert set changed": changes[key]["changed_share"],
                                                    "top-1 expert changed": changes[key]["top1_changed_share"]}
                                   for key in layers}, ylim=(0.0, 1.0), value_labels=True)
        compared = f"One other checkpoint is compared (step {steps[0]}): a single comparison, one bar per layer."
    else:
        lines = {f"layer {key}": (steps, [entry["layers"][key]["changed_share"] for entry in stability])
                 for key in layers}
        png = charts.curves(out / "routing_stability.png", f"Tokens routed to another expert set than at step "
                            f"{numbers['step']} (analysed)", "checkpoint step", "share of tokens", lines,
                            integer_x=True, ylim=(0.0, 1.0))
        compared = f"{len(steps)} other checkpoints are compared (steps {', '.join(map(str, steps))})."
    rows = [[entry["step"], key, entry["layers"][key]["changed_share"], entry["layers"][key]["mean_overlap"],
             entry["layers"][key]["top1_changed_share"]] for entry in stability for key in layers]
    return Section("stability", "Routing stability across checkpoints",
                   "How early routing settles: each kept checkpoint's routing of the same tokens against the analysed "
                   f"checkpoint's. {compared}",
                   [Figure("Routing changes against the analysed checkpoint", png, "0: every token chooses the same "
                           "experts as at the analysed checkpoint; 1: every token chooses others."),
                    Table("Per checkpoint and layer", ["step", "layer", "expert set changed",
                                                       "mean overlap of the sets", "top-1 changed"], rows)])


def disabling_section(numbers: dict, out: Path) -> Section | None:
    curves_by_run = numbers.get("expert_disabling")
    if not curves_by_run:
        return None
    lines = {run: ([point["share"] for point in points], [point["rise"] for point in points])
             for run, points in curves_by_run.items()}
    errors = {run: [noise(point["rise_se"]) or 0.0 for point in points] for run, points in curves_by_run.items()}
    shares = sorted({share for xs, _ in lines.values() for share in xs})
    png = charts.curves(out / "expert_disabling.png", "Disabling the most-routed experts (DeepSeekMoE Fig. 4)",
                        "share of each layer's routed experts disabled (the most-routed first)",
                        "loss rise over none disabled (nats)", lines, errors=errors,
                        references={"no change": ([shares[0], shares[-1]], [0.0, 0.0])})
    notes = " ".join(f"{run}: {point[key]}." for run, points in curves_by_run.items() for point in points
                     for key in ("kept", "stopped") if key in point)
    rows = [[run, point["k"], point["share"], point["loss"], point["rise"],
             *(noise_cells(point["rise"], point["rise_se"]) if index else ["-", "-"])]
            for run, points in curves_by_run.items() for index, point in enumerate(points)]
    return Section("disabling", "Expert-disabling probe",
                   "In every MoE layer the k experts that received the most tokens are disabled and each token picks "
                   "its top-K among the others (DeepSeekMoE Sec. 4.5). Runs are compared at equal shares of their "
                   "experts disabled. A steeper rise means the disabled experts held knowledge the others cannot "
                   "stand in for: less redundancy.",
                   [Figure("Loss rise against disabled experts", png,
                           f"Error bars: ± {NOISE_SE} standard errors of each rise, over the same windows scored with "
                           "and without the experts (the windows' spread of the rise / sqrt(windows), windows taken "
                           f"as independent). {noise_verdict(curves_by_run)}"),
                    Table("Loss per run and k", ["run", "experts disabled per layer", "share", "loss",
                                                 "rise over none", f"noise (± {NOISE_SE} SE)", "beyond noise"], rows,
                          " ".join(filter(None, [probe_measure(numbers), notes])))])

