"""Writing checkpoint directories by hand, with the key names published checkpoints use (independent of
dsmoe.interop.keys): one tensor per expert, `experts.{e}.{gate,up,down}_proj.weight`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import save_file


def per_expert_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' fused `experts.gate_up_proj` [E, 2F, D] / `experts.down_proj` [E, D, F] -> per-expert tensors."""
    out = {}
    for name, tensor in state.items():
        fused = re.fullmatch(r"(.*experts)\.(gate_up_proj|down_proj)", name)
        if fused is None:
            out[name] = tensor.contiguous()
            continue
        for expert, weights in enumerate(tensor):
            if fused.group(2) == "down_proj":
                out[f"{fused.group(1)}.{expert}.down_proj.weight"] = weights.contiguous()
            else:
                gate, up = weights.chunk(2)
                out[f"{fused.group(1)}.{expert}.gate_proj.weight"] = gate.contiguous()
                out[f"{fused.group(1)}.{expert}.up_proj.weight"] = up.contiguous()
    return out


def write_checkpoint(directory: Path, config: dict, tensors: dict[str, torch.Tensor]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    save_file({name: tensor.detach().contiguous().clone() for name, tensor in tensors.items()},
              str(directory / "model.safetensors"))
    return directory
