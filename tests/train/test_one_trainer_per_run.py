"""A second process training a run directory that one is training refuses at once, naming the first, which
finishes untouched."""

import subprocess
import sys
from pathlib import Path

from dsmoe.cli.main import main
from dsmoe.runs import RunConfig, RunDir
from train.tiny import cli_env, read_steps, train_args, wait_for

STEPS, PAUSE_STEP = 4, 2
PAUSED_TRAIN = Path(__file__).with_name("paused_train.py")


def test_a_second_trainer_is_refused_naming_the_first_which_finishes_untouched(tmp_path, capsys):
    run, go = tmp_path / "run", tmp_path / "go"
    first = subprocess.Popen([sys.executable, str(PAUSED_TRAIN), "metrics", str(PAUSE_STEP), str(go),
                              *train_args(tmp_path, run, train__steps=STEPS)],
                             env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(read_steps(run / "metrics.jsonl")) == PAUSE_STEP, first, what=f"step {PAUSE_STEP}")
        assert main(train_args(tmp_path, run, train__steps=STEPS, train__seed=1)) == 2
        go.touch()
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        first.kill()
        first.wait()
    err = capsys.readouterr().err
    assert f"dsmoe train: error: run directory {str(run)!r} is in use by pid {first.pid} on host " in err, err
    assert f"({PAUSED_TRAIN.name} metrics {PAUSE_STEP} {go} train --out {run} " in err
    assert err.rstrip().endswith("; wait for it or choose another --out")
    assert [record["step"] for record in read_steps(run / "metrics.jsonl")] == list(range(1, STEPS + 1))
    assert RunConfig.load(RunDir(run).config_path).train.seed == 0
    assert [checkpoint.path.name for checkpoint in RunDir(run).checkpoints()] == [f"step_{STEPS:08d}"]
    assert not RunDir(run).lock_path.exists()
