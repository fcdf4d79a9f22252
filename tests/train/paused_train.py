"""`dsmoe` exactly as the console script runs it, but paused at one point, so that a test can act on the run
there (kill it, start a second process on it) instead of racing a run that takes a few ms per step:

    python paused_train.py WHERE STEP GO_FILE train --out RUN ...

WHERE is `metrics` (just after step STEP's record is written), `torn_metrics` (after the first half of that record's
line is written) or `checkpoint` (inside the write of checkpoint STEP, its weights written to the temporary
directory). The process waits there until GO_FILE exists; a test that kills it never creates it.
"""

import json
import sys
import time
from pathlib import Path

from dsmoe.cli.main import main
from dsmoe.runs import checkpoint
from dsmoe.runs.metrics_log import MetricsLog

where, step, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
write_record, save_model, save_file = MetricsLog.write, checkpoint.save_model, checkpoint.save_file


def wait_for_go() -> None:
    while not go.exists():
        time.sleep(0.01)


def paused_write_record(log: MetricsLog, record: dict) -> None:
    if record.get("step") != step or "loss" not in record or where == "checkpoint":
        return write_record(log, record)
    line = (json.dumps(record) + "\n").encode()
    cut = len(line) // 2 if where == "torn_metrics" else len(line)
    log.file.write(line[:cut])
    wait_for_go()
    log.file.write(line[cut:])


def paused_after(save):
    """`save` (the weights of a model, or of its state dict, as the trainer gives them), then the pause."""
    def paused_save(weights, path: str) -> None:
        save(weights, path)
        if where == "checkpoint" and f".step_{step:08d}." in path:  # the temporary of checkpoint `step`
            wait_for_go()
    return paused_save


MetricsLog.write = paused_write_record
checkpoint.save_model, checkpoint.save_file = paused_after(save_model), paused_after(save_file)
sys.exit(main(sys.argv[4:]))
