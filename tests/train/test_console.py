"""What training prints: a start summary with the run's numbers, a bar that follows the time budget, a resume
line, a finish line that says why it stopped, and a checkpoint by the time rule (on a fake clock)."""

from pathlib import Path

import pytest

from dsmoe.config import TrainConfig
from dsmoe.model import count_params
from dsmoe.runs import RunDir
from dsmoe.train import loop
from dsmoe.train.console import ProgressBar, finish_line, start_summary
from dsmoe.train.progress import TrainingProgress
from dsmoe.train.save_schedule import doubling_saves_min, save_interval_min
from train.tiny import run_config


def test_the_start_summary_holds_the_parameters_tokens_budget_checkpoints_device_and_run(tmp_path):
    config = run_config(tmp_path, train__steps=200, train__time_budget_min=2.0, train__save_every=50,
                        train__save_every_min=5.0, train__dtype="float32")
    params = count_params(config.model)
    lines = start_summary(config, 123_456, 7_890, "cpu", 1, Path("runs/x")).splitlines()
    assert lines == [
        f"parameters     {params.total / 1e6:.2f}M total, {params.activated / 1e6:.2f}M activated per token",
        "data           123,456 train tokens, 7,890 val tokens",
        "budget         200 steps or 2 min, whichever comes first, 4 x 32 tokens per step",
        "saves          every 50 steps and after 1, 2, 4, 8 min, then every 5 min, and at the end; the last 3 "
        "kept",
        "device         cpu, float32",
        "run directory  runs/x",
    ]


def test_a_run_prints_its_summary_before_training_and_its_finish_line_after(tmp_path, capsys):
    loop.train(run_config(tmp_path, train__steps=2), tmp_path / "run")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("parameters ") and lines[-1] == "finished: 2/2 steps"
    assert f"run directory  {tmp_path / 'run'}" in lines


def test_with_a_time_budget_the_bar_and_its_eta_follow_the_budget(clock, capsys):
    progress = TrainingProgress(TrainConfig(steps=1000, time_budget_min=2.0))
    progress.start()
    with ProgressBar(progress, step=0, enabled=True) as bar:
        clock[0] = 60.0  # half the budget, 5 of the 1000 steps
        bar.update(5, lm_loss=3.25, aux_losses={"balance": 0.01, "z_loss": 0.002}, tokens_per_s=1000.0)
        shown, rate_per_s = str(bar.bar), bar.bar.format_dict["rate"]
    assert bar.bar.total == 1000 and bar.bar.n == 500  # the schedule's position, in steps
    assert (1000 - 500) / rate_per_s == pytest.approx(60.0)  # the ETA: the budget's other minute
    assert shown.startswith("train  50%|") and shown.endswith("| [01:00<00:59, step=5/1000, lm_loss=3.250, "
                                                               "aux=0.0120, tok_s=1,000]")  # 59.99 s, floored


def test_resuming_says_from_which_step_and_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    loop.train(run_config(tmp_path, train__steps=2), run)
    capsys.readouterr()
    loop.train(run_config(tmp_path, train__steps=3), run, resume=True)
    assert "resuming from step 2 (checkpoint step_00000002)\n" in capsys.readouterr().out


def test_the_finish_line_says_why_training_stopped():
    assert finish_line(None, 200, 200, Path("runs/a")) == "finished: 200/200 steps"
    assert finish_line("time_budget", 120, 200, Path("runs/a")) == "stopped by the time budget at step 120 " \
                                                                   "(of 200 planned)"
    assert finish_line("SIGINT", 7, 200, Path("my runs/a")) == "stopped at step 7 (SIGINT); resume with: " \
                                                              "dsmoe train --out 'my runs/a' --resume"


def test_a_checkpoint_is_written_every_save_every_min_of_training(slow_steps, tmp_path):
    # 6 s per step and a checkpoint every 15 s: at 18 s (step 3), 18 s later (step 6), and the last at step 8
    config = run_config(tmp_path, train__steps=8, train__save_every=0, train__save_every_min=0.25,
                        train__keep_last=10)
    loop.train(config, tmp_path / "run")
    assert [path.path.name for path in RunDir(tmp_path / "run").checkpoints()] == \
        ["step_00000003", "step_00000006", "step_00000008"]


def test_checkpoints_by_time_come_after_1_2_4_minutes_then_every_save_every_min(slow_steps, tmp_path):
    # 6 s per step: 1 min is 10 steps; with save_every_min=3 the interval doubles 1, 1, 2, then stays 3
    config = run_config(tmp_path, train__steps=75, train__save_every=0, train__save_every_min=3.0,
                        train__keep_last=10, train__eval_every=0)
    loop.train(config, tmp_path / "run")
    assert [int(path.path.name.removeprefix("step_")) for path in RunDir(tmp_path / "run").checkpoints()] == \
        [10, 20, 40, 70, 75]


def test_the_time_rule_doubles_from_one_minute_up_to_save_every_min():
    assert doubling_saves_min(10) == [1, 2, 4, 8, 16]
    assert doubling_saves_min(1) == [] and doubling_saves_min(0.25) == []
    assert [save_interval_min(10, last) for last in (0, 1, 2, 4, 8, 16, 26)] == [1, 1, 2, 4, 8, 10, 10]
