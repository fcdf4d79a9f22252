"""The demo: its config keeps the MoE and its dense counterpart at equal activated parameters, and
--compare-dense trains both for the same time and prints them side by side."""

import json
import time

import pytest

from dsmoe import demo
from dsmoe.demo import DEMO_CONFIG, REPORT_SHARE, run_demo
from dsmoe.model import count_params
from dsmoe.model.counterpart import dense_counterpart
from dsmoe.runs import RunConfig
from train.tiny import corpus_text, one_thread

# The demo at the CLI tests' size, its dense layers as wide as an MoE layer's activated experts (32 + 2 x 32).
SMALL_DEMO = {"model.hidden_size": 64, "model.n_heads": 2, "model.n_layers": 2, "model.intermediate_size": 96,
              "model.moe_intermediate_size": 32, "model.n_routed_experts": 4, "model.n_activated_experts": 2,
              "model.vocab_size": 512, "data.seq_len": 32, "train.batch_size": 4, "train.warmup_steps": 2,
              "train.eval_every": 0, "train.save_every": 0}


def test_the_demo_config_and_its_dense_counterpart_activate_the_same_parameters_but_the_router():
    moe = RunConfig.load(DEMO_CONFIG).model
    moe_count, dense_count = count_params(moe), count_params(dense_counterpart(moe))
    assert moe.moe_layers and dense_count.by_component["routed_experts"] == (0, 0)
    assert dense_count.activated == moe_count.activated - moe_count.by_component["router"][1]
    assert moe_count.total > 2 * dense_count.total  # what the MoE adds: routed experts to choose from


def small_demo(tmp_path) -> list[str]:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text())
    values = {**SMALL_DEMO, "data.path": str(corpus), "data.cache_dir": str(tmp_path / "cache")}
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def test_compare_dense_trains_the_counterpart_for_the_same_time_and_prints_both(tmp_path, capsys):
    with one_thread():
        result = run_demo(0.05, tmp_path / "demo", small_demo(tmp_path), compare_dense=True)
    printed = capsys.readouterr().out
    assert result.final_eval is not None
    dense_config = RunConfig.load(tmp_path / "demo-dense" / "config.toml")
    assert dense_config.model.moe_layers == [] and 0 < dense_config.train.time_budget_min < 0.05 * (1 - REPORT_SHARE)
    assert dense_config.model == dense_counterpart(RunConfig.load(tmp_path / "demo" / "config.toml").model)
    table = printed[printed.index("model  "):]
    assert "DeepSeekMoE" in table and "dense" in table and "bits per byte" in table
    assert printed.count("validation: loss") == 2


def test_compare_dense_refuses_a_used_dense_directory_before_training(tmp_path):
    (tmp_path / "demo-dense").mkdir()
    (tmp_path / "demo-dense" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"demo-dense' is not empty \(notes\.txt\)"):
        run_demo(0.05, tmp_path / "demo", small_demo(tmp_path), compare_dense=True)
    assert not (tmp_path / "demo").exists()


def test_the_training_budget_is_what_timing_the_step_leaves_of_the_minutes_less_the_report_share(monkeypatch):
    def slow_probe(config):
        time.sleep(0.6)
        return 0.01
    monkeypatch.setattr(demo, "seconds_per_step", slow_probe)
    fitted = demo.fit_to_minutes(RunConfig.load(DEMO_CONFIG), minutes=1)
    expected_minutes = 1 - REPORT_SHARE - 0.6 / 60
    assert abs(fitted.train.time_budget_min - expected_minutes) < 0.1 / 60
    assert fitted.train.steps == int(fitted.train.time_budget_min * 60 * (1 - 0.02) / (0.01 / demo.STEP_HEADROOM))
