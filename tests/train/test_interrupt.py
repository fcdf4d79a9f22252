"""Ctrl-C (SIGINT) stops `dsmoe train` cleanly at a step boundary with a checkpoint that --resume continues."""

import signal
import subprocess

from dsmoe.runs import RunDir
from dsmoe.runs import checkpoint as ckpt
from train.tiny import DSMOE, cli_env, read_steps, run_dsmoe, train_args, wait_for

MANY_STEPS = 100_000  # far more than the run gets through before the test interrupts it


def test_sigint_saves_the_step_reached_and_resume_continues_from_it(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen([str(DSMOE), *train_args(tmp_path, out, train__steps=MANY_STEPS, train__save_every=0,
                                                        train__eval_every=0, train__schedule="constant")],
                               env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(read_steps(out / "metrics.jsonl")) >= 3, process, what="step 3")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr  # 128 + SIGINT: the run saved, but did not finish
    reached = len(read_steps(out / "metrics.jsonl"))
    assert f"\nstopped at step {reached} (SIGINT); resume with: dsmoe train --out {out} --resume\n" in stdout
    assert "validation:" not in stdout
    assert RunDir(out).latest_checkpoint().path.name == f"step_{reached:08d}"
    assert ckpt.load_trainer_state(RunDir(out).latest_checkpoint())["step"] == reached

    resumed = run_dsmoe(["train", "--out", str(out), "--resume", "--set", f"train.steps={reached + 2}"])
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(f"--resume: applying train.steps: {MANY_STEPS} -> {reached + 2}\n"
                                     f"resuming from step {reached} (checkpoint step_{reached:08d})\n")
    assert f"\nfinished: {reached + 2}/{reached + 2} steps\nvalidation: loss " in resumed.stdout
    assert [record["step"] for record in read_steps(out / "metrics.jsonl")] == list(range(1, reached + 3))
    assert RunDir(out).latest_checkpoint().path.name == f"step_{reached + 2:08d}"
