"""Opening a run directory: its config, tokenizer and the model from a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from dsmoe.data.tokenizer import load_tokenizer
from dsmoe.model import DeepSeekMoEForCausalLM
from dsmoe.run_config import RunConfig
from dsmoe.train import checkpoint as ckpt

TOKENIZER_FILE = "tokenizer.json"


@dataclass
class LoadedRun:
    config: RunConfig
    model: DeepSeekMoEForCausalLM
    tokenizer: Tokenizer
    checkpoint: Path


def load_checkpoint_model(run_dir: str | Path, checkpoint: str | Path | None = None
                          ) -> tuple[RunConfig, DeepSeekMoEForCausalLM, Path]:
    """The config and eval-mode model of the latest (or the given) checkpoint of `run_dir`, and that checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file():
        raise ValueError(f"--run {str(run_dir)!r} is not a run directory (no config.toml)")
    chosen = Path(checkpoint) if checkpoint else ckpt.latest_checkpoint(run_dir)
    if chosen is None:
        raise ValueError(f"run directory {str(run_dir)!r} has no checkpoint yet")
    config = RunConfig.load(chosen / ckpt.CONFIG)
    model = DeepSeekMoEForCausalLM(config.model)
    ckpt.load_weights(chosen, model)
    return config, model.eval(), chosen


def load_run(run_dir: str | Path, checkpoint: str | Path | None = None) -> LoadedRun:
    """The model of the latest (or the given) checkpoint of `run_dir`, in eval mode, with the run's tokenizer."""
    config, model, chosen = load_checkpoint_model(run_dir, checkpoint)
    return LoadedRun(config, model, load_tokenizer(Path(run_dir) / TOKENIZER_FILE), chosen)
