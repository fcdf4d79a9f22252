"""A Hugging Face checkpoint directory's files: its safetensors shards (and transformers' index of them), planned,
written and found in order (hf.save_pretrained writes them through dsmoe.atomic.atomic_directory)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

from dsmoe.structured_files import read_table

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
MAX_SHARD_BYTES = 5 * 2**30  # transformers' default max_shard_size of "5GB"


def plan_shards(sizes: dict[str, int], max_shard_bytes: int) -> list[list[str]]:
    """Tensor names in order, cut into shards of at most max_shard_bytes (a bigger tensor gets one of its own)."""
    shards: list[list[str]] = [[]]
    used = 0
    for name, size in sizes.items():
        if shards[-1] and used + size > max_shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += size
    return shards


def write_shards(directory: Path, sizes: dict[str, int], tensor: Callable[[str], torch.Tensor],
                 max_shard_bytes: int = MAX_SHARD_BYTES) -> None:
    """model.safetensors, or model-0000i-of-0000n.safetensors + model.safetensors.index.json (transformers' names).

    `tensor(name)` is called shard by shard and its result copied, so at most one shard is held twice.
    """
    shards = plan_shards(sizes, max_shard_bytes)
    names = [SINGLE_FILE] if len(shards) == 1 else [f"model-{i:05d}-of-{len(shards):05d}.safetensors"
                                                      for i in range(1, len(shards) + 1)]
    for file_name, shard in zip(names, shards):
        save_file({name: tensor(name).contiguous().clone() for name in shard}, str(directory / file_name),
                  metadata={"format": "pt"})
    if len(shards) > 1:
        weight_map = {name: file_name for file_name, shard in zip(names, shards) for name in shard}
        index = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": weight_map}
        (directory / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")


def shard_files(directory: Path) -> list[Path]:
    """The safetensors files of a checkpoint directory: those its index names, else every *.safetensors."""
    index = directory / INDEX_FILE
    if index.is_file():
        weight_map = read_table(index, "shard index").get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"shard index {str(index)!r} has no \"weight_map\" table of tensor names to files")
        files = sorted(set(weight_map.values()))
        return [directory / name for name in files]
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors files in {str(directory)!r} (pytorch_model.bin checkpoints are "
                                "not read: convert them to safetensors first)")
    return files
