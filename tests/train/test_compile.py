"""train.compile=true: the compiled model trains on the same trajectory as the eager one (fp32 rounding)."""

import pytest
import torch

from dsmoe.train.loop import train
from train.tiny import read_steps, run_config


def test_compiled_training_follows_the_eager_losses(tmp_path):
    """sigmoid_topk: the compiled graph also has to leave the expert-bias update hook working."""
    torch._dynamo.reset()
    losses = {}
    for compiled in (False, True):
        run = tmp_path / f"compile-{compiled}"
        train(run_config(tmp_path, train__steps=3, train__compile=compiled, model__router="sigmoid_topk"), run)
        losses[compiled] = [record["loss"] for record in read_steps(run / "metrics.jsonl")]
    assert len(losses[True]) == 3
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
    assert losses[True][-1] < losses[True][0]  # it trains
