"""The specialisation suite's probe (DeepSeekMoE Sec. 4.5, Fig. 4), through the analysis package: the first
variant's seed-0 run analysed with the second's as comparison, so its HTML report holds both; the curves are the
validation loss against the share of each layer's most-routed experts disabled."""

from __future__ import annotations

from dsmoe.analysis.analyze import analyze_run
from dsmoe.reproduce.plan import Plan
from dsmoe.reproduce.variants import Variant


def disabling_probe(plan: Plan, first: Variant, second: Variant, max_tokens: int) -> dict:
    out = plan.out / "analysis"
    analysis = analyze_run(plan.run_dir(first, 0), data=plan.data, compare=(plan.run_dir(second, 0),), out=out,
                           max_tokens=max_tokens, device=plan.run_config(first, 0).train.device)
    curves = analysis.numbers["expert_disabling"]
    by_variant = dict(zip((first.name, second.name), curves.values()))
    return {"title": "Disabling each layer's most-routed experts (seed 0)", "x_label": "share of routed experts disabled",
            "y_label": "loss", "report": str(out / "report.html"),
            "curves": {name: [[point["share"], point["loss"]] for point in points]
                       for name, points in by_variant.items()}}
