"""A run killed with SIGKILL mid-run, even in the middle of a metrics line or of a checkpoint write, and resumed
from its last checkpoint retraces an uninterrupted run bit for bit, leaving nothing of the cut write behind."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from dsmoe.cli.main import main
from dsmoe.runs import RunDir
from dsmoe.train.loop import train
from train.tiny import cli_env, one_thread, read_steps, run_config, train_args, wait_for

STEPS, SAVE_EVERY = 12, 3
SETTINGS = dict(train__steps=STEPS, train__save_every=SAVE_EVERY, train__eval_every=4, train__keep_last=10)
PAUSED_TRAIN = Path(__file__).with_name("paused_train.py")
KILL_STEP = {"torn_metrics": 5, "checkpoint": 6}  # where in paused_train.py, and the step it pauses at


def cut_write_is_there(where: str, run: Path) -> bool:
    """Whether the killed process left the cut write: a metrics line without its end, a checkpoint temporary."""
    if where == "torn_metrics":
        return not (run / "metrics.jsonl").read_bytes().endswith(b"\n")
    return any(run.glob(f"checkpoints/.step_{KILL_STEP[where]:08d}.*.tmp/model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The same run in this process (one torch thread, as the killed one), which spares a second start of torch."""
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    with one_thread():
        train(run_config(tmp_path, **SETTINGS), tmp_path / "run")
    return tmp_path / "run"


def kill_mid_write(where: str, tmp_path: Path) -> Path:
    """Train in tmp_path/run until paused_train.py pauses at `where`, then SIGKILL it."""
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, str(PAUSED_TRAIN), where, str(KILL_STEP[where]), str(tmp_path / "go"),
                                *train_args(tmp_path, run, **SETTINGS)],
                               env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(read_steps(run / "metrics.jsonl")) >= KILL_STEP[where] - 1
                 and cut_write_is_there(where, run), process, what=f"the pause at {where}")
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    return run


@pytest.mark.parametrize("where", KILL_STEP)
def test_resume_after_sigkill_mid_write_reproduces_the_uninterrupted_run_bitwise(where, uninterrupted, tmp_path):
    killed = kill_mid_write(where, tmp_path)
    assert RunDir(killed).latest_checkpoint() is not None, "no checkpoint was written before the kill"
    assert cut_write_is_there(where, killed)

    assert main(["train", "--out", str(killed), "--resume"]) == 0

    assert sorted(killed.rglob(".*.tmp")) == []
    assert (killed / "metrics.jsonl").read_bytes().endswith(b"\n")
    losses = {run: [record["loss"] for record in read_steps(run / "metrics.jsonl")] for run in (uninterrupted, killed)}
    assert [record["step"] for record in read_steps(killed / "metrics.jsonl")] == list(range(1, STEPS + 1))
    assert losses[killed] == losses[uninterrupted]
    weights = {run: load_file(RunDir(run).latest_checkpoint().weights_path) for run in (uninterrupted, killed)}
    assert weights[killed].keys() == weights[uninterrupted].keys()
    for name, tensor in weights[uninterrupted].items():
        assert tensor.equal(weights[killed][name]), name
