"""The run directory, in one place: where its files live (layout), its config (run_config), its checkpoints
(checkpoint), its metrics log (metrics_log), the lock of the process training it (lock) and opening it for eval,
generate and interop (open_run)."""

from dsmoe.runs.layout import CheckpointDir, RunDir
from dsmoe.runs.open_run import LoadedRun, load_checkpoint_model, load_run
from dsmoe.runs.run_config import RunConfig

__all__ = ["CheckpointDir", "LoadedRun", "RunConfig", "RunDir", "load_checkpoint_model", "load_run"]
