"""The run directory, in one place: where its files live (layout), its config (config), its checkpoints
(checkpoint) and opening it for eval, generate and interop (loading)."""

from dsmoe.runs.layout import CheckpointDir, RunDir
from dsmoe.runs.loading import LoadedRun, load_checkpoint_model, load_run
from dsmoe.runs.run_config import RunConfig

__all__ = ["CheckpointDir", "LoadedRun", "RunConfig", "RunDir", "load_checkpoint_model", "load_run"]
