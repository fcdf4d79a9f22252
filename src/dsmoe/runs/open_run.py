"""Opening a run directory for eval, generate and interop: its config, tokenizer and the model of a checkpoint.

Nothing here imports the training loop, so reading a run never pulls in what training needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from dsmoe.data.tokenizer import load_tokenizer
from dsmoe.model import DeepSeekMoEForCausalLM
from dsmoe.runs.checkpoint import load_weights, newest_intact_checkpoint, verify_checkpoint
from dsmoe.runs.layout import CheckpointDir, RunDir
from dsmoe.runs.run_config import RunConfig


@dataclass
class LoadedRun:
    config: RunConfig
    model: DeepSeekMoEForCausalLM
    tokenizer: Tokenizer
    checkpoint: Path


def load_checkpoint_model(run_dir: str | Path, checkpoint: str | Path | None = None
                          ) -> tuple[RunConfig, DeepSeekMoEForCausalLM, Path]:
    """The config and eval-mode model of the newest intact (or the given, verified) checkpoint of `run_dir`, and that
    checkpoint; a corrupt newer one is skipped, saying so on stderr (see runs.checkpoint)."""
    run = RunDir(run_dir)
    if not run.config_path.is_file():
        raise ValueError(f"--run {str(run.path)!r} is not a run directory (no {run.config_path.name})")
    if checkpoint:
        chosen = CheckpointDir(checkpoint)
        verify_checkpoint(chosen)
    else:
        chosen = newest_intact_checkpoint(run)
    config = RunConfig.load(chosen.config_path)
    model = DeepSeekMoEForCausalLM(config.model)
    load_weights(chosen, model)
    return config, model.eval(), chosen.path


def load_run(run_dir: str | Path, checkpoint: str | Path | None = None) -> LoadedRun:
    """The model of the newest intact (or the given) checkpoint of `run_dir`, in eval mode, with the run's
    tokenizer."""
    config, model, chosen = load_checkpoint_model(run_dir, checkpoint)
    return LoadedRun(config, model, load_tokenizer(RunDir(run_dir).tokenizer_path), chosen)
