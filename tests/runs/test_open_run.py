"""Reading a run (eval, generate, interop) never imports the training loop."""

import subprocess
import sys

READERS = ["dsmoe.runs", "dsmoe.eval.run_eval", "dsmoe.interop.run_dirs", "dsmoe.cli.eval_cmd",
           "dsmoe.cli.generate_cmd"]


def test_opening_evaluating_generating_and_converting_runs_leave_the_training_loop_unimported():
    code = f"import sys\nfor name in {READERS!r}:\n    __import__(name)\nassert 'dsmoe.train.loop' not in sys.modules"
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
