"""train.tensorboard=true writes <run>/tensorboard/ event files holding exactly what metrics.jsonl holds, step by
step (also across a resume), closes them on every way out, and a missing tensorboard package fails at start."""

import math
import re
import shutil
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dsmoe.cli.main import main as cli_main
from dsmoe.runs import RunDir
from dsmoe.train import loop
from dsmoe.runs.metrics_log import read_metrics
from dsmoe.train.step import StepResult
from dsmoe.train.tensorboard import TensorBoardLog
from train.tiny import corpus_text, one_thread, run_config, train_args

EVERYTHING = {"scalars": 0, "histograms": 0}  # EventAccumulator keeps every event, not a sample
SETTINGS = dict(train__steps=4, train__eval_every=2, train__save_every=2, train__keep_last=4, train__tensorboard=True,
                data__val_fraction=0.2)


def two_domain_config(tmp_path, **changes):
    """The tiny run on two domains (so evaluations report per-domain losses), TensorBoard on."""
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    lines = corpus_text().splitlines(keepends=True)
    (corpus / "sonnets.txt").write_text("".join(lines[:len(lines) // 2]))
    (corpus / "dialogue.txt").write_text("".join(lines[len(lines) // 2:]))
    return run_config(tmp_path, data__path=str(corpus), **{**SETTINGS, **changes})


def events(run_dir) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance=EVERYTHING)
    accumulator.Reload()
    return accumulator


def event_scalars(run_dir) -> dict[tuple[str, int], list[float]]:
    """(tag, step) -> the values TensorBoard shows there (more than one would be a stale, unpurged event)."""
    accumulator, found = events(run_dir), {}
    for tag in accumulator.Tags()["scalars"]:
        for event in accumulator.Scalars(tag):
            found.setdefault((tag, event.step), []).append(event.value)
    return found


def leaves(record: dict, path: str = ""):
    for key, value in record.items():
        yield from leaves(value, f"{path}{key}/") if isinstance(value, dict) else [(f"{path}{key}", value)]


def jsonl_scalars(run_dir) -> dict[tuple[str, int], list[float]]:
    """(key path, step) -> [the number metrics.jsonl holds there, as the float32 an event stores]."""
    return {(tag, record["step"]): [float(np.float32(value))] for record in read_metrics(run_dir / "metrics.jsonl")
            for tag, value in leaves(record) if tag != "step" and not isinstance(value, list)}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("tensorboard")
    with one_thread():
        loop.train(two_domain_config(tmp_path), tmp_path / "run")
    return tmp_path / "run"


def test_every_scalar_of_metrics_jsonl_is_an_event_with_the_same_value_at_the_same_step(trained_run):
    expected = jsonl_scalars(trained_run)
    assert event_scalars(trained_run) == expected
    tags = {tag for tag, _ in expected}
    assert {"loss", "lm_loss", "expert_balance", "lr", "grad_norm", "tokens_per_s", "experts/1/cv",
            "experts/1/max_over_mean", "experts/1/dropped", "val_loss", "val_bpb", "val_domains/sonnets/loss",
            "val_domains/dialogue/bpb", "final_val", "final_val_bpb", "final_val_domains/sonnets/bpb"} <= tags
    assert {step for tag, step in expected if tag == "val_domains/dialogue/loss"} == {2}


def test_each_moe_layer_has_a_histogram_whose_bucket_i_is_expert_i_token_count(trained_run):
    histograms = events(trained_run).Histograms("experts/1/tokens_per_expert")
    steps = [r for r in read_metrics(trained_run / "metrics.jsonl") if "experts" in r]
    assert [h.step for h in histograms] == [r["step"] for r in steps] == [1, 2, 3, 4]
    for histogram, record in zip(histograms, steps):
        assert histogram.histogram_value.bucket == record["experts"]["1"]["tokens_per_expert"]
        assert histogram.histogram_value.bucket_limit == [0.5, 1.5, 2.5, 3.5]


def test_resume_purges_the_events_after_the_checkpoint_as_metrics_jsonl_drops_its_records(tmp_path):
    config = two_domain_config(tmp_path, train__steps=3)
    loop.train(config, tmp_path / "run")  # checkpoints at 2 and 3, a final evaluation at 3
    shutil.rmtree(RunDir(tmp_path / "run").latest_checkpoint().path)  # as if killed after step 3, before its save
    loop.train(two_domain_config(tmp_path, train__steps=4), tmp_path / "run", resume=True)
    expected = jsonl_scalars(tmp_path / "run")
    assert ("final_val", 3) not in expected and ("final_val", 4) in expected
    assert event_scalars(tmp_path / "run") == expected


@pytest.fixture
def close_calls(monkeypatch):
    calls = []
    real_close = TensorBoardLog.close

    def close(self):
        calls.append(self)
        real_close(self)
    monkeypatch.setattr(TensorBoardLog, "close", close)
    return calls


def stop_requested_at_step_2(monkeypatch):
    monkeypatch.setattr(loop.Trainer, "over_time_budget", lambda self: "SIGINT" if self.step >= 2 else None)


def nan_loss_at_step_3(monkeypatch):
    real, calls = loop.accumulate_gradients, []

    def accumulate(*args):
        calls.append(args)
        result = real(*args)
        return result if len(calls) < 3 else StepResult(math.nan, math.nan, result.aux_losses, result.router_stats)
    monkeypatch.setattr(loop, "accumulate_gradients", accumulate)


WAYS_OUT = {"end": (lambda monkeypatch: None, 3), "stop_request": (stop_requested_at_step_2, 2),
            "non_finite_stop": (nan_loss_at_step_3, 2)}  # how to get there, the last step logged


@pytest.mark.parametrize("way_out", WAYS_OUT)
def test_the_event_file_is_closed_and_complete_on_every_way_out(way_out, close_calls, monkeypatch, tmp_path):
    install, last_step = WAYS_OUT[way_out]
    install(monkeypatch)
    config = run_config(tmp_path, train__steps=3, train__tensorboard=True, train__max_nonfinite=1)
    if way_out == "non_finite_stop":
        with pytest.warns(UserWarning, match="non-finite"), pytest.raises(loop.NonFiniteLossError):
            loop.train(config, tmp_path / "run")
    else:
        loop.train(config, tmp_path / "run")
    assert len(close_calls) == 1
    expected = jsonl_scalars(tmp_path / "run")
    assert event_scalars(tmp_path / "run") == expected
    assert max(step for _, step in expected) == last_step


def test_without_the_flag_no_event_files_are_written(tmp_path):
    loop.train(run_config(tmp_path, train__steps=1), tmp_path / "run")
    assert (tmp_path / "run" / "metrics.jsonl").is_file() and not (tmp_path / "run" / "tensorboard").exists()


def test_a_missing_tensorboard_package_fails_at_start_naming_the_flag_and_the_install_command(tmp_path, monkeypatch,
                                                                                          capsys):
    for name in [name for name in sys.modules if name.startswith("torch.utils.tensorboard")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now raises ImportError
    message = ("train.tensorboard=true needs the tensorboard package, which is not installed; "
               "install it with: pip install 'dsmoe[tensorboard]'")
    with pytest.raises(ImportError, match=f"^{re.escape(message)}"):
        loop.train(run_config(tmp_path, train__tensorboard=True), tmp_path / "run")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()
    assert cli_main(train_args(tmp_path, tmp_path / "run", train__tensorboard=True)) == 2  # one line, no traceback
    assert capsys.readouterr().err.startswith(f"dsmoe train: error: {message}")
