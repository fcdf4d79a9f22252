"""Sizing a time-limited run: the measured step count scales with the budget and leaves the run untouched."""

import torch

from dsmoe.train import calibrate
from train.tiny import run_config


def test_steps_scale_with_budget_and_keep_rng(monkeypatch, tmp_path):
    config = run_config(tmp_path)
    torch.manual_seed(3)
    before = torch.get_rng_state()
    measured = calibrate.seconds_per_step(config)
    assert measured > 0
    assert torch.equal(torch.get_rng_state(), before)  # the probe must not shift the run's seeds
    monkeypatch.setattr(calibrate, "seconds_per_step", lambda config: 0.5)
    fitted = calibrate.fit_steps_to_budget(config, minutes=2, eval_share=0.05)
    assert fitted.train.steps == int(2 * 60 * 0.95 / 0.5) and config.train.steps != fitted.train.steps
    assert calibrate.fit_steps_to_budget(config, minutes=0.001).train.steps == config.train.warmup_steps + 1
