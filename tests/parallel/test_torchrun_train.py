"""`torchrun -m dsmoe train` with expert parallelism, as a user runs it: the same losses as one process, gathered
checkpoints that one process evaluates, generates from and exports, resumes under other layouts, a killed rank,
and the failures that must end the job with a message."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import dsmoe
from dsmoe.cli.main import main
from dsmoe.train.loop import train
from dsmoe.runs.metrics_log import read_metrics
from tests.parallel.launch import rank_pid, start_torchrun_dsmoe, torchrun_dsmoe
from tests.train.tiny import run_config, train_args

TOLERANCE = 1e-5
# DeepSeek-V3's layout at tiny size: MLA, sigmoid gating with the bias, 2 expert groups (one per ep rank), M = 1
V3_STYLE = dict(model__attention="mla", model__q_lora_rank=32, model__kv_lora_rank=32, model__qk_nope_head_dim=16,
                model__qk_rope_head_dim=8, model__v_head_dim=16, model__rope_interleave=True,
                model__router="sigmoid_topk", model__n_group=2, model__topk_group=1)


def step_losses(run: Path) -> dict[int, float]:
    return {record["step"]: record["loss"] for record in read_metrics(run / "metrics.jsonl") if "loss" in record}


def final_loss(run: Path) -> float:
    return next(record["final_val"] for record in read_metrics(run / "metrics.jsonl") if "final_val" in record)


STEPS = 16
EP2_RUN = dict(train__steps=STEPS, train__save_every=4, train__eval_every=4, parallel__ep=2, **V3_STYLE)


@pytest.fixture(scope="module")
def ep2_run(tmp_path_factory) -> tuple[Path, Path]:
    """16 steps of the tiny V3-style run with parallel.ep=2 on 2 processes (checkpoints and evaluations every 4)."""
    tmp_path = tmp_path_factory.mktemp("ep2")
    out = tmp_path / "run"
    done = torchrun_dsmoe(2, train_args(tmp_path, out, **EP2_RUN))
    assert done.returncode == 0, done.stderr[-12000:]
    assert done.stdout.count(f"finished: {STEPS}/{STEPS} steps") == 1  # rank 0 speaks for the job
    return tmp_path, out


def test_ep2_training_equals_one_process(ep2_run, tmp_path):
    """ep=2 over batches of 4 sequences is one process accumulating 2 micro-batches of 2 (in rank order)."""
    data_dir, parallel_run = ep2_run
    single = tmp_path / "single"
    changes = {**EP2_RUN, "parallel__ep": 1, "train__batch_size": 2, "train__grad_accum": 2}
    train(run_config(data_dir, **changes), single)
    expected, got = step_losses(single), step_losses(parallel_run)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step, loss in expected.items():
        assert abs(got[step] - loss) <= TOLERANCE * loss, step
    assert abs(final_loss(parallel_run) - final_loss(single)) <= TOLERANCE * final_loss(single)


def test_metrics_log_each_layer_and_ranks_traffic(ep2_run):
    """Each step's own traffic (the evaluation after step 4 is not counted in step 5's)."""
    records = [record for record in read_metrics(ep2_run[1] / "metrics.jsonl") if "loss" in record]
    for record in records:
        (layer, traffic), = record["traffic"].items()  # the tiny model's one MoE layer
        assert len(traffic["bytes_sent"]) == len(traffic["tokens_received"]) == 2
        assert traffic["tokens"] == [64, 64]  # 2 sequences of 32 tokens per rank
        assert sum(traffic["tokens_sent"]) == sum(traffic["tokens_received"]) > 0
        assert traffic["tokens_received_max_over_mean"] >= 1.0
        assert traffic["ranks_per_token"] == 1.0 and traffic["max_ranks_per_token"] == [1, 1]  # M = topk_group = 1


def test_one_process_reads_the_parallel_checkpoint(ep2_run, tmp_path, capsys):
    _, run = ep2_run
    assert main(["eval", "--run", str(run)]) == 0
    assert main(["generate", "--run", str(run), "--prompt", "To be", "--max-new-tokens", "4"]) == 0
    assert main(["convert", "--to-hf", str(run), "--out", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "config.json").is_file()


def test_resume_with_other_layouts(ep2_run, tmp_path):
    """Saved with ep=2, resumed on one process, then with ep=4 on 4 processes."""
    data_dir, run = ep2_run
    resumed = tmp_path / "resumed"
    os.system(f"cp -r {run} {resumed}")
    assert main(["train", "--out", str(resumed), "--resume", "--set", "parallel.ep=1",
                 "--set", f"train.steps={STEPS + 1}"]) == 0
    done = torchrun_dsmoe(4, ["train", "--out", str(resumed), "--resume", "--set", "parallel.ep=4",
                              "--set", f"train.steps={STEPS + 2}"])
    assert done.returncode == 0, done.stderr[-12000:]
    assert sorted(step_losses(resumed)) == list(range(1, STEPS + 3))
    traffic = [record["traffic"] for record in read_metrics(resumed / "metrics.jsonl")
               if record.get("step") == STEPS + 2 and "loss" in record]
    assert len(next(iter(traffic[0].values()))["tokens"]) == 4


def wait_for_step(run: Path, step: int, job, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and job.poll() is None:
        metrics = run / "metrics.jsonl"
        if metrics.is_file() and max(step_losses(run), default=0) >= step:
            return
        time.sleep(0.05)
    ended = "" if job.poll() is None else f" (it ended with {job.returncode}: {job.communicate()[1][-12000:]})"
    raise AssertionError(f"the job did not reach step {step}{ended}")


def test_a_killed_rank_stops_the_job_and_resume_follows_the_same_trajectory(ep2_run):
    """The fixture's run is the uninterrupted one; this one loses rank 1 to SIGKILL after step 5 and resumes
    from its step-4 checkpoint (or a later one, if it got that far)."""
    data_dir, uninterrupted = ep2_run
    killed = data_dir / "killed"
    job = start_torchrun_dsmoe(2, train_args(data_dir, killed, **EP2_RUN))
    wait_for_step(killed, 5, job)
    os.kill(rank_pid(job, 1), signal.SIGKILL)
    started = time.monotonic()
    job.communicate(timeout=120)
    assert job.returncode != 0 and time.monotonic() - started < 60
    resumed = torchrun_dsmoe(2, ["train", "--out", str(killed), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-12000:]
    expected, got = step_losses(uninterrupted), step_losses(killed)
    assert sorted(got) == sorted(expected) == list(range(1, STEPS + 1))
    for step in range(5, STEPS + 1):  # the steps after the checkpoint it resumed from
        assert abs(got[step] - expected[step]) <= TOLERANCE * expected[step], step


def test_a_layout_without_torchrun_is_refused(tmp_path, capsys):
    assert main(train_args(tmp_path, tmp_path / "run", parallel__ep=2)) == 2
    error = capsys.readouterr().err
    assert "parallel.ep=2 x parallel.dp=1 needs 2 processes started by torchrun" in error
    assert not (tmp_path / "run").exists()


def test_a_mesh_that_does_not_fit_the_processes_is_refused(tmp_path, monkeypatch, capsys):
    """What each rank of `torchrun --nproc-per-node 2 ... --set parallel.ep=4` finds in its environment."""
    for name, value in dict(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                            MASTER_PORT="1").items():
        monkeypatch.setenv(name, value)
    assert main(train_args(tmp_path, tmp_path / "run", parallel__ep=4)) == 2
    assert "torchrun started 2 processes but parallel.ep=4 x parallel.dp=1 = 4" in capsys.readouterr().err


def test_a_config_error_is_said_once_by_rank_0_without_a_traceback_of_dsmoe(tmp_path):
    """Muon with parallel.ep=2 (the issue's command), refused by the config on both ranks before they join: rank 0
    says it in one line, rank 1 waits for it and is stopped by torchrun. torchrun's own summary of the failure (its
    ChildFailedError traceback, in torch's files) still follows."""
    config = Path(__file__).parents[2] / "configs" / "tiny.toml"
    done = torchrun_dsmoe(2, ["train", "--config", str(config), "--set", "parallel.ep=2", "--set", "train.steps=2",
                              "--out", str(tmp_path / "run")], timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert output.count("dsmoe train: error: train.optimizer='muon' runs on one process only") == 1, output
    assert "rank 1:" not in output
    package = Path(dsmoe.__file__).parent
    assert [line for line in output.splitlines() if f'File "{package}' in line] == []
    assert not (tmp_path / "run").exists()


HUNG_TIMEOUT_S = 10  # long enough that a rank merely slowed by a loaded machine is not taken for a hung one


def still_running(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie, or reaped since, has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_hung_rank_ends_the_others_within_the_timeout(tmp_path):
    """Rank 1 stopped (SIGSTOP) mid-run: rank 0's next collective gives up after parallel.timeout_s and it exits
    naming the cause; torchrun then ends the stopped rank (after its own grace period, so the test kills it)."""
    run = tmp_path / "run"
    job = start_torchrun_dsmoe(2, train_args(tmp_path, run, train__steps=400, parallel__ep=2,
                                             parallel__timeout_s=HUNG_TIMEOUT_S))
    wait_for_step(run, 3, job)
    hung, rank0 = rank_pid(job, 1), rank_pid(job, 0)
    assert hung is not None and rank0 is not None
    os.kill(hung, signal.SIGSTOP)
    started = time.monotonic()
    while still_running(rank0) and time.monotonic() - started < 60:
        time.sleep(0.2)
    waited = time.monotonic() - started
    os.kill(hung, signal.SIGKILL)
    _, stderr = job.communicate(timeout=120)
    assert waited < HUNG_TIMEOUT_S + 20, waited
    assert "rank 0: a collective with the other ranks failed" in stderr and "Timed out" in stderr, stderr[-12000:]
