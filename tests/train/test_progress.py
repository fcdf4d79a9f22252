"""A time budget drives the schedule when the clock runs out before the steps: a slow run still ends annealed,
and resuming continues the same schedule position; a run the clock does not limit keeps its step schedule."""

import shutil

import pytest

from dsmoe.runs import RunDir
from dsmoe.runs import checkpoint as ckpt
from dsmoe.train import loop, progress
from dsmoe.config.train_config import TrainConfig
from dsmoe.train.optim import lr_multiplier
from train.fake_clock import SECONDS_PER_STEP
from train.tiny import read_steps, run_config

STEPS, SAVE_EVERY = 20, 4  # a 1-minute budget holds 10 of the 20 steps of SECONDS_PER_STEP
SLOW_RUN = dict(train__steps=STEPS, train__warmup_steps=2, train__lr=1e-2, train__min_lr_ratio=0.1,
                train__time_budget_min=1.0, train__save_every=SAVE_EVERY, train__keep_last=10)


def logged_lrs(run_dir) -> list[float]:
    return [record["lr"] for record in read_steps(RunDir(run_dir).metrics_path)]


def final_lr(run_dir) -> float:
    return ckpt.load_trainer_state(RunDir(run_dir).latest_checkpoint())["optimizer"]["param_groups"][0]["lr"]


def test_position_is_the_step_without_a_budget_and_the_time_share_in_steps_when_that_is_further(clock):
    assert progress.TrainingProgress(TrainConfig(steps=100)).position(7) == 7
    timed = progress.TrainingProgress(TrainConfig(steps=100, time_budget_min=2.0))
    timed.start()
    clock[0] = 30.0  # a quarter of the budget
    assert timed.position(7) == 25.0 and timed.position(40) == 40 and not timed.out_of_time()
    clock[0] = 120.0
    assert timed.out_of_time()


def test_a_run_slower_than_its_steps_ends_on_the_annealed_learning_rate(slow_steps, tmp_path, capsys):
    config = run_config(tmp_path, **SLOW_RUN)
    result = loop.train(config, tmp_path / "run")
    assert (result.step, result.stopped_early) == (10, "time_budget")
    assert "\nstopped by the time budget at step 10 (of 20 planned)\n" in capsys.readouterr().out
    lrs = logged_lrs(tmp_path / "run")
    assert all(later < earlier for earlier, later in zip(lrs[1:], lrs[2:]))  # decaying from the end of warm-up
    assert lrs[-1] == pytest.approx(1e-2 * lr_multiplier(18, config.train))  # step 10 ran at 90% of the budget
    assert final_lr(tmp_path / "run") == pytest.approx(1e-2 * 0.1)


@pytest.mark.parametrize("budget_min", [None, 10.0])
def test_a_run_the_clock_does_not_limit_keeps_the_step_schedule(budget_min, clock, tmp_path, capsys):
    changes = {**SLOW_RUN, "train__steps": 6, "train__time_budget_min": budget_min}
    config = run_config(tmp_path, **{key: value for key, value in changes.items() if value is not None})
    result = loop.train(config, tmp_path / "run")
    assert (result.step, result.stopped_early) == (6, None)
    assert "\nfinished: 6/6 steps\n" in capsys.readouterr().out
    assert logged_lrs(tmp_path / "run") == [1e-2 * lr_multiplier(step, config.train) for step in range(6)]


def test_resuming_a_time_budgeted_run_continues_its_schedule_position(slow_steps, tmp_path):
    config, run = run_config(tmp_path, **SLOW_RUN), tmp_path / "run"
    loop.train(config, run)
    uninterrupted = logged_lrs(run)
    shutil.rmtree(RunDir(run).latest_checkpoint().path)  # as if killed after the checkpoint of step 8
    assert ckpt.load_trainer_state(RunDir(run).latest_checkpoint())["progress"] == {"elapsed_s": 8 * SECONDS_PER_STEP}
    result = loop.train(config, run, resume=True)
    assert (result.step, result.stopped_early) == (10, "time_budget")
    assert logged_lrs(run) == uninterrupted and final_lr(run) == pytest.approx(1e-2 * 0.1)
