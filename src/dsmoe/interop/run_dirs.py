"""Hugging Face checkpoint directories <-> dsmoe run directories (what `dsmoe convert` does).

An imported run holds what `dsmoe eval` and `dsmoe generate` read (written by dsmoe.runs.checkpoint): the run's config
(the model section; data and train at their defaults, data.seq_len capped at the model's max_seq_len), checkpoint 0
with its weights, config and manifest, and the tokenizer when the checkpoint directory has one. It has no trainer
state, so it cannot be resumed with `dsmoe train --resume`.

Both directions write only a new or empty directory, checked before the model is read.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dsmoe.atomic import check_new_directory
from dsmoe.config.data_config import DataConfig
from dsmoe.interop.families import export_family
from dsmoe.interop.hf import TOKENIZER_FILE, exported_config, from_pretrained, save_pretrained
from dsmoe.runs import RunConfig, RunDir, load_checkpoint_model
from dsmoe.runs.checkpoint import save_weights_only_run
from dsmoe.runtime.devices import resolve_device

IMPORTED_STEP = 0


def import_run(hf_dir: str | Path, run_dir: str | Path, dtype: torch.dtype = torch.float32,
               device: str | torch.device = "cpu") -> Path:
    """Write the checkpoint in `hf_dir` (see hf.from_pretrained) as a new run directory `run_dir`, its weights
    streamed into the model on `device` (a torch.device or a --device name); the files do not depend on it."""
    hf_dir = Path(hf_dir)
    check_new_directory(run_dir)
    model = from_pretrained(hf_dir, dtype, resolve_device(device, "device"))
    data = DataConfig(seq_len=min(DataConfig.seq_len, model.config.max_seq_len))
    config_toml = RunConfig(model=model.config, data=data).to_toml()
    tokenizer = hf_dir / TOKENIZER_FILE
    save_weights_only_run(run_dir, IMPORTED_STEP, model, config_toml, tokenizer if tokenizer.is_file() else None)
    return Path(run_dir)


def export_run(run_dir: str | Path, out_dir: str | Path, model_type: str | None = None,
               device: str | torch.device = "cpu", mtp: bool = True) -> Path:
    """Write the latest checkpoint of `run_dir` (and its tokenizer) as a Hugging Face checkpoint directory (see
    hf.save_pretrained), the model loaded on `device` (a torch.device or a --device name); the files do not depend
    on it. A config no family can express is refused from the run's config.toml, before any weights are read."""
    check_new_directory(out_dir)
    run = RunDir(run_dir)
    if run.config_path.is_file():  # without it, load_checkpoint_model says this is not a run directory
        export_family(exported_config(RunConfig.load(run.config_path).model, mtp), model_type)
    _, model, _ = load_checkpoint_model(run_dir, device=device)
    tokenizer = run.tokenizer_path
    return save_pretrained(model, out_dir, model_type, tokenizer if tokenizer.is_file() else None, mtp=mtp)
