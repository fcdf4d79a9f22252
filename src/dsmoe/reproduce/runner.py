"""Run a plan's variants and seeds, resumably: a finished run is read, not recomputed; an interrupted one resumes
from its newest checkpoint; then the results, the report and its plots are written."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from dsmoe.atomic import atomic_file
from dsmoe.reproduce.collect import run_results, run_state
from dsmoe.reproduce.plan import Plan
from dsmoe.reproduce.specialisation_probe import disabling_probe
from dsmoe.reproduce.suite_dir import RESULTS, check_suite_dir
from dsmoe.reproduce.variants import check_ffn_sizes, matched_params_table, variant_params
from dsmoe.runs import RunDir
from dsmoe.train.calibrate import fit_steps_to_budget
from dsmoe.train.loop import train
from dsmoe.train.resume import saved_config


class SuiteInterrupted(RuntimeError):
    """A run of the suite was stopped by a signal (it saved a checkpoint); running the command again resumes."""

    def __init__(self, reason: str, run_dir: Path):
        super().__init__(f"{run_dir} stopped by {reason}; run the same command again to resume it")
        self.reason = reason


def train_variant(plan: Plan, variant, seed: int) -> str:
    """Train (or resume, or skip) one run; returns what was done."""
    run_dir, config = plan.run_dir(variant, seed), plan.run_config(variant, seed)
    state = run_state(run_dir, config)
    if state == "finished":
        return "finished earlier"
    if state == "interrupted":  # as the run trained, on this plan's device
        saved = saved_config(RunDir(run_dir))
        result = train(replace(saved, train=replace(saved.train, device=config.train.device)), run_dir, resume=True)
    else:
        if plan.budget == "minutes":
            config = fit_steps_to_budget(config, plan.budget_value)
        result = train(config, run_dir)
    if result.stopped_early not in (None, "time_budget"):
        raise SuiteInterrupted(result.stopped_early, run_dir)
    return "resumed" if state == "interrupted" else "trained"


def run_suite(plan: Plan, probe_tokens: int = 60_000) -> dict:
    """Every run of the plan (see train_variant), then results.json, report.md and the plots in plan.out."""
    variants = plan.variants
    check_suite_dir(plan.out, [variant.name for variant in variants])
    print(f"{plan.suite.title}: {len(variants)} variants x {plan.seeds} seeds at scale {plan.scale.name}, "
          f"{plan.budget_value:g} {plan.budget} each -> {plan.out}")
    print(matched_params_table(variants, plan.scale))
    check_ffn_sizes(variants, plan.scale)
    runs = [(variant, seed) for seed in range(plan.seeds) for variant in variants]
    with tqdm(runs, desc=f"reproduce {plan.suite.name}", unit="run", dynamic_ncols=True) as bar:
        for variant, seed in bar:
            bar.set_postfix_str(f"{variant.name} seed {seed}")
            done = train_variant(plan, variant, seed)
            tqdm.write(f"{variant.label}, seed {seed}: {done}")
    results = collect_results(plan)
    if plan.suite.probe:
        results["probe"] = disabling_probe(plan, variants[0], variants[1], probe_tokens)
    write_results(plan, results)
    return results


def collect_results(plan: Plan) -> dict:
    suite = plan.suite
    return {"suite": suite.name, "title": suite.title, "scale": plan.scale.name, "budget": plan.budget,
            "budget_value": plan.budget_value, "data": plan.data, "command": plan.command(),
            "paper": {"source": suite.source, "metric": suite.metric}, "expected_order": suite.expected_order,
            "variants": [{"name": variant.name, "label": variant.label, "paper_value": variant.paper_value,
                          "matched": variant.matched, "activated_f": variant.activated_f,
                          "description": variant.description,
                          "params": variant_params(variant, plan.scale).as_dict(),
                          "runs": [run_results(plan.run_dir(variant, seed), seed) for seed in range(plan.seeds)]}
                         for variant in plan.variants],
            "probe": None}


def write_results(plan: Plan, results: dict) -> None:
    from dsmoe.reproduce.suite_report import write_report

    with atomic_file(plan.out / RESULTS) as temporary:
        temporary.write_text(json.dumps(results, indent=1) + "\n")
    report = write_report(results, plan.out)
    print(f"report: {report}")
