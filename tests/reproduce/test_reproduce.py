"""`dsmoe reproduce`: every suite at a micro size with one seed writes its results, report and plots with the
matched variants stating the same activated FFN activating equal parameters; both budgets work; a rerun skips
finished runs and resumes an interrupted one; bad arguments and stale runs are refused before any work."""

from __future__ import annotations

import itertools
import json

import pytest

from dsmoe.cli.main import main
from dsmoe.reproduce import runner
from dsmoe.reproduce.plan import Plan
from dsmoe.reproduce.runner import SuiteInterrupted, run_suite
from dsmoe.reproduce.suites import SUITES
from dsmoe.runs.metrics_log import read_metrics
from dsmoe.train import calibrate, progress
from dsmoe.train.loop import StopRequest
from tests.train.tiny import write_corpus

MICRO = ("model.hidden_size=64", "model.n_heads=2", "model.vocab_size=300",
         "model.max_seq_len=32", "data.seq_len=32", "data.vocab_size=300", "train.warmup_steps=1",
         "train.eval_batches=1")


def micro_plan(tmp_path, suite: str, **changes) -> Plan:
    corpus = write_corpus(tmp_path / "data")
    options = dict(budget="steps", budget_value=2, data=str(corpus), out=tmp_path / suite,
                   overrides=(*MICRO, f"data.cache_dir={json.dumps(str(tmp_path / 'cache'))}"))
    return Plan.make(suite, "tiny", **{**options, **changes})


def check_outputs(plan: Plan, results: dict) -> None:
    assert (plan.out / "report.md").is_file() and (plan.out / "results.json").is_file()
    report = (plan.out / "report.md").read_text()
    for image in ("loss_bars.png", "curves.png"):
        assert image in report and next(plan.out.rglob(image)).stat().st_size > 1000
    matched: dict[float, set[int]] = {}
    for variant in results["variants"]:
        if variant["matched"]:
            matched.setdefault(variant["activated_f"], set()).add(variant["params"]["ffn_activated"])
    assert matched and all(len(counts) == 1 for counts in matched.values())
    for variant in results["variants"]:
        (run,) = variant["runs"]
        assert run["steps"] == plan.budget_value or plan.budget == "minutes"
        assert run["val_loss"] > 0 and run["train_curve"]


# table1-equal-activated is table1's layouts at other widths (suites.table1_layouts): tests/reproduce/test_table1.py
@pytest.mark.parametrize("suite", [name for name in SUITES if name not in ("specialisation", "table1-equal-activated")])
def test_every_suite_runs_and_reports(tmp_path, suite):
    plan = micro_plan(tmp_path, suite)
    results = run_suite(plan)
    check_outputs(plan, results)
    assert [variant["name"] for variant in results["variants"]] == [variant.name for variant in plan.variants]


def test_the_specialisation_suite_runs_the_disabling_probe(tmp_path):
    plan = micro_plan(tmp_path, "specialisation")
    results = run_suite(plan, probe_tokens=3000)
    check_outputs(plan, results)
    curves = results["probe"]["curves"]
    assert set(curves) == {"deepseekmoe", "gshard_x1.5"} and all(len(points) >= 2 for points in curves.values())
    assert (plan.out / "analysis" / "report.html").is_file() and "probe.png" in (plan.out / "report.md").read_text()


CLOCK_TICK_S = 0.25


def test_the_minutes_budget_gives_every_variant_the_same_time(tmp_path, monkeypatch):
    """Each variant is sized to more steps than its minutes hold and trains until the first step boundary at or
    past them. The training clock ticks a fixed 0.25 s per reading and the probe reports 0.1 s per step, so the
    bound does not race a loaded machine's real clock."""
    ticks = itertools.count()
    monkeypatch.setattr(progress, "perf_counter", lambda: next(ticks) * CLOCK_TICK_S)
    monkeypatch.setattr(calibrate, "seconds_per_step", lambda config: 0.1)
    budget_min = 0.05
    plan = micro_plan(tmp_path, "shared-ratio", budget="minutes", budget_value=budget_min)
    results = run_suite(plan)
    check_outputs(plan, results)
    minutes = [variant["runs"][0]["train_minutes"] for variant in results["variants"]]
    assert all(budget_min <= spent <= budget_min + 1 / 60 for spent in minutes), minutes


def test_a_rerun_skips_finished_runs_and_resumes_an_interrupted_one(tmp_path, monkeypatch, capsys):
    plan = micro_plan(tmp_path, "granularity", budget_value=3)
    real_train, calls = runner.train, []

    def second_run_interrupted(*args, **kwargs):  # a Ctrl-C during the second run's first step
        calls.append(args)
        if len(calls) != 2:
            return real_train(*args, **kwargs)
        enter = StopRequest.__enter__
        monkeypatch.setattr(StopRequest, "__enter__", lambda self: setattr(enter(self), "reason", "SIGINT") or self)
        try:
            return real_train(*args, **kwargs)
        finally:
            monkeypatch.setattr(StopRequest, "__enter__", enter)

    monkeypatch.setattr(runner, "train", second_run_interrupted)
    with pytest.raises(SuiteInterrupted, match="run the same command again to resume it"):
        run_suite(plan)
    second = plan.run_dir(plan.variants[1], 0)
    assert not any("final_val" in record for record in read_metrics(second / "metrics.jsonl"))
    capsys.readouterr()
    results = run_suite(plan)
    said = capsys.readouterr().out
    first, second_label = plan.variants[0].label, plan.variants[1].label
    assert f"{first}, seed 0: finished earlier" in said and f"{second_label}, seed 0: resumed" in said
    assert f"{plan.variants[2].label}, seed 0: trained" in said
    assert [record["step"] for record in read_metrics(second / "metrics.jsonl") if "loss" in record] == [1, 2, 3]
    check_outputs(plan, results)


def test_a_run_of_another_model_in_the_suite_directory_is_refused(tmp_path):
    plan = micro_plan(tmp_path, "shared-ratio")
    run_suite(plan)
    changed = micro_plan(tmp_path, "shared-ratio", overrides=(*plan.overrides, "model.hidden_size=96"))
    with pytest.raises(ValueError, match="holds another run than this suite asks for .*model.hidden_size: 64 -> 96"):
        run_suite(changed)
    with pytest.raises(ValueError, match="train.steps: 2 -> 3"):
        run_suite(micro_plan(tmp_path, "shared-ratio", budget_value=3))
    with pytest.raises(ValueError, match="data.path: "):
        run_suite(micro_plan(tmp_path, "shared-ratio", data="shakespeare"))


@pytest.mark.parametrize("args, message", [
    (["table1", "--budget", "minutes", "--steps", "5"], "--steps goes with --budget steps"),
    (["table1", "--set", "train.lr=-1"], "train.lr=-1 must be a number > 0"),
    (["table1", "--set", "parallel.ep=3"], "parallel.ep=3 does not divide"),
    (["table1", "--data", "no/such/corpus.txt"], "corpus path 'no/such/corpus.txt' does not exist"),
])
def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys, args, message):
    assert main(["reproduce", *args, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
