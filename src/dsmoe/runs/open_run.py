"""Opening a run directory for eval, generate and interop: its config, tokenizer and the model of a checkpoint.

Nothing here imports the training loop, so reading a run never pulls in what training needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from dsmoe.data.tokenizer import load_tokenizer
from dsmoe.model import DeepSeekMoEForCausalLM
from dsmoe.model.moe import expert_kernel_summary
from dsmoe.runs.checkpoint import load_weights, newest_intact_checkpoint, verify_checkpoint
from dsmoe.runs.layout import CheckpointDir, RunDir
from dsmoe.runs.run_config import RunConfig
from dsmoe.runtime.devices import DTYPE_NAMES, autocast_context, inference_dtype, resolve_device


@dataclass
class LoadedRun:
    config: RunConfig
    model: DeepSeekMoEForCausalLM
    tokenizer: Tokenizer
    checkpoint: Path

    @property
    def device(self) -> torch.device:
        return self.model.lm_head.weight.device

    @property
    def dtype(self) -> str:
        """What eval and generate compute in on the model's device (runtime.devices.inference_dtype): the run's
        train.dtype where the device has native bf16 matmuls, else float32."""
        return inference_dtype(self.config.train.dtype, self.device)

    def autocast(self, dtype: str | None = None):
        """The autocast context of `dtype` (default: self.dtype) on the model's device."""
        return autocast_context(dtype or self.dtype, self.device)

    def expert_kernel(self, dtype: str | None = None) -> str:
        """The one line on the expert kernel this model runs on its device in `dtype` (default: self.dtype); an
        explicit grouped_mm that cannot run there is a ValueError."""
        return expert_kernel_summary(self.config.model, self.device, DTYPE_NAMES[dtype or self.dtype])


def load_checkpoint_model(run_dir: str | Path, checkpoint: str | Path | None = None,
                          device: str | torch.device = "cpu") -> tuple[RunConfig, DeepSeekMoEForCausalLM, Path]:
    """The config and eval-mode model of the newest intact (or the given, verified) checkpoint of `run_dir`, and that
    checkpoint; a corrupt newer one is skipped, saying so on stderr (see runs.checkpoint). The model is on `device`
    (a torch.device or a --device name), the CPU by default."""
    device = resolve_device(device, "device")
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
    return config, model.to(device).eval(), chosen.path


def load_run(run_dir: str | Path, checkpoint: str | Path | None = None,
             device: str | torch.device = "cpu") -> LoadedRun:
    """The model of the newest intact (or the given) checkpoint of `run_dir`, in eval mode on `device` (default the
    CPU), with the run's tokenizer."""
    config, model, chosen = load_checkpoint_model(run_dir, checkpoint, device)
    return LoadedRun(config, model, load_tokenizer(RunDir(run_dir).tokenizer_path), chosen)
