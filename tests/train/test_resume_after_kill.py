"""A run killed with SIGKILL and resumed from its last checkpoint retraces an uninterrupted run bit for bit."""

import os
import signal
import subprocess
import sys

from safetensors.torch import load_file

from dsmoe.runs import RunDir
from train.tiny import cli_env, read_steps, run_dsmoe, train_args, wait_for

STEPS, SAVE_EVERY, KILL_AT = 12, 3, 5
THREADS = None  # torch's default thread count, as a plain `dsmoe train` uses, in all three runs

# `dsmoe train` exactly as the console script runs it, but each metrics record is followed by a pause, so
# that the test can kill the process mid-run rather than racing a run that takes a few ms per step.
THROTTLED_MAIN = """
import sys, time
from dsmoe.cli.main import main
from dsmoe.train.metrics import MetricsLog
write = MetricsLog.write
MetricsLog.write = lambda self, record: (write(self, record), time.sleep(0.1))
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_sigkill_reproduces_the_uninterrupted_run_bitwise(tmp_path):
    args = dict(train__steps=STEPS, train__save_every=SAVE_EVERY, train__eval_every=4, train__keep_last=10)
    uninterrupted, killed = tmp_path / "A", tmp_path / "B"
    finished = run_dsmoe(train_args(tmp_path, uninterrupted, **args), threads=THREADS)
    assert finished.returncode == 0, finished.stderr

    process = subprocess.Popen([sys.executable, "-c", THROTTLED_MAIN, *train_args(tmp_path, killed, **args)],
                               env=cli_env(THREADS), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(read_steps(killed / "metrics.jsonl")) >= KILL_AT, process, what=f"step {KILL_AT}")
        assert RunDir(killed).latest_checkpoint() is not None, "no checkpoint was written before the kill"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = len(read_steps(killed / "metrics.jsonl"))
    assert killed_at < STEPS, "the run finished before it was killed"

    resumed = run_dsmoe(["train", "--out", str(killed), "--resume"], threads=THREADS)
    assert resumed.returncode == 0, resumed.stderr

    losses = {run: [record["loss"] for record in read_steps(run / "metrics.jsonl")] for run in (uninterrupted, killed)}
    assert [record["step"] for record in read_steps(killed / "metrics.jsonl")] == list(range(1, STEPS + 1))
    assert losses[killed] == losses[uninterrupted]
    weights = {run: load_file(RunDir(run).latest_checkpoint().weights_path) for run in (uninterrupted, killed)}
    assert weights[killed].keys() == weights[uninterrupted].keys()
    for name, tensor in weights[uninterrupted].items():
        assert tensor.equal(weights[killed][name]), name
