"""A non-finite loss skips its step (no update, same batch retried); max_nonfinite in a row stop the run.

The sigmoid_topk router is used so that the skipped step's expert-load counts, which would otherwise feed
the next optimizer step's bias update, are covered too.
"""

import math

import pytest
import torch
from safetensors.torch import load_file

from dsmoe.routers import routers_of
from dsmoe.runs import RunDir
from dsmoe.runs import checkpoint as ckpt
from dsmoe.train import loop
from dsmoe.train.step import StepResult
from train.tiny import one_thread, read_steps, run_config

STEPS, SAVE_EVERY, MAX_NONFINITE = 4, 2, 3
SETTINGS = dict(train__steps=STEPS, train__save_every=SAVE_EVERY, train__keep_last=STEPS,
                train__max_nonfinite=MAX_NONFINITE, model__router="sigmoid_topk")


def weights(run_dir, step):
    return load_file(RunDir(run_dir).checkpoint(step).weights_path)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("clean")
    with one_thread():
        loop.train(run_config(tmp_path, **SETTINGS), tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture
def nan_on_calls(monkeypatch):
    """Make the calls of accumulate_gradients numbered (from 1) n with is_nan(n) yield NaN gradients and loss."""
    def install(is_nan):
        calls = []

        def accumulate(model, *args):
            result = real(model, *args)
            calls.append(args)
            if not is_nan(len(calls)):
                return result
            for param in model.parameters():
                param.grad.fill_(math.nan)
            for router in routers_of(model):  # a NaN forward routes garbage: all its tokens to expert 0, say
                for statistic in router.pending_statistics():
                    statistic[0] += 1e6
            return StepResult(math.nan, math.nan, result.aux_losses, result.router_stats)

        real = loop.accumulate_gradients
        monkeypatch.setattr(loop, "accumulate_gradients", accumulate)
        return calls
    return install


def test_one_nan_step_is_skipped_and_retried_leaving_the_run_unchanged(clean_run, nan_on_calls, tmp_path):
    calls = nan_on_calls(lambda call: call == 2)
    with pytest.warns(UserWarning, match=r"step 1: non-finite loss nan .* step skipped \(1/3 in a row\)"):
        result = loop.train(run_config(tmp_path, **SETTINGS), tmp_path / "run")
    assert result.step == STEPS and len(calls) == STEPS + 1
    assert torch.equal(calls[1][0], calls[2][0])  # the skipped step's batch is the one retried
    records = {run: read_steps(run / "metrics.jsonl") for run in (clean_run, tmp_path / "run")}
    assert [r["step"] for r in records[tmp_path / "run"]] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in records[tmp_path / "run"]] == [r["loss"] for r in records[clean_run]]
    final, expected = weights(tmp_path / "run", STEPS), weights(clean_run, STEPS)
    assert all(torch.equal(final[name], tensor) for name, tensor in expected.items())


def test_max_nonfinite_in_a_row_stop_the_run_keeping_the_last_good_checkpoint(clean_run, nan_on_calls, tmp_path):
    nan_on_calls(lambda call: call > SAVE_EVERY + 1)  # steps 1..3 succeed, then every attempt at step 4 fails
    with pytest.warns(UserWarning, match="non-finite"), pytest.raises(loop.NonFiniteLossError) as error:
        loop.train(run_config(tmp_path, **SETTINGS), tmp_path / "run")
    last_good = RunDir(tmp_path / "run").checkpoint(SAVE_EVERY)
    assert str(error.value) == (f"{MAX_NONFINITE} consecutive non-finite losses at step {SAVE_EVERY + 1}; stopping. "
                                f"Last good checkpoint: {last_good}")
    assert RunDir(tmp_path / "run").checkpoints() == [last_good]
    assert [r["step"] for r in read_steps(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3]
    kept, expected = weights(tmp_path / "run", SAVE_EVERY), weights(clean_run, SAVE_EVERY)
    assert all(torch.equal(kept[name], tensor) for name, tensor in expected.items())
    assert ckpt.load_trainer_state(last_good)["step"] == SAVE_EVERY
