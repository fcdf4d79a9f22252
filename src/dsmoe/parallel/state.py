"""Gathered checkpoints: a parallel model's weights and AdamW state as the single-process tensors, and back.

dsmoe checkpoints stay one safetensors file of full tensors whatever the layout that wrote them (chosen over
torch.distributed.checkpoint's per-rank shards): `dsmoe eval`, `generate` and `convert --to-hf` read them on one
process unchanged, the sha256 manifest covers them, and a resume may change ep and dp freely, since each rank
cuts its own piece from the full tensors. The price: saving gathers every tensor to every rank (one at a time, so
the peak is the model's full size in host memory), which bounds the model to what one host holds; the weights'
layout on disk is the same as torch.distributed.checkpoint would reassemble.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor

from dsmoe.model.moe import RoutedExperts
from dsmoe.parallel.mesh import ParallelMesh


def expert_block_names(model: nn.Module) -> set[str]:
    """State names of the stacked routed-expert weights, which an ep rank holds a block of (dim 0)."""
    return {f"{prefix}.{name}" for prefix, module in model.named_modules() if isinstance(module, RoutedExperts)
            for name, _ in module.named_parameters(recurse=False)}


def full_tensor(value: torch.Tensor, expert_block: bool, mesh: ParallelMesh) -> torch.Tensor:
    """The whole tensor, on the CPU: FSDP2's shards gathered, then an expert block gathered over its ep group."""
    value = value.detach()
    whole = value.full_tensor() if isinstance(value, DTensor) else value
    if expert_block and mesh.ep.size() > 1:
        blocks = [torch.empty_like(whole) for _ in range(mesh.ep.size())]
        dist.all_gather(blocks, whole.contiguous(), group=mesh.ep.get_group())
        whole = torch.cat(blocks)
    return whole.cpu()


def local_piece(whole: torch.Tensor, like: torch.Tensor, expert_block: bool, mesh: ParallelMesh) -> torch.Tensor:
    """This rank's part of a full tensor, shaped and placed as `like` (a sharded parameter or its AdamW moment)."""
    if expert_block and mesh.ep.size() > 1:
        whole = whole.chunk(mesh.ep.size())[mesh.ep.get_local_rank()]
    whole = whole.detach().to(like.device, like.dtype)
    if isinstance(like, DTensor):
        return distribute_tensor(whole, like.device_mesh, like.placements, src_data_rank=None)
    return whole


def distinct_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters and buffers themselves, a tied one once under its first name (what safetensors'
    save_model keeps); state_dict() without keep_vars returns a new tensor per name, hiding the tie."""
    state, seen = {}, set()
    for name, value in model.state_dict(keep_vars=True).items():
        if id(value) not in seen:
            seen.add(id(value))
            state[name] = value
    return state


def gathered_model_state(model: nn.Module, mesh: ParallelMesh) -> dict[str, torch.Tensor]:
    """The single-process state dict (tied weights once, under their first name); every rank takes part and gets
    it."""
    experts = expert_block_names(model)
    return {name: full_tensor(value, name in experts, mesh) for name, value in distinct_state(model).items()}


@torch.no_grad()
def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], mesh: ParallelMesh) -> None:
    """Copy a single-process state dict into the parallel model (a tied weight found under its first name);
    a missing or unexpected tensor is an error naming it."""
    experts, own = expert_block_names(model), distinct_state(model)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(model.state_dict(keep_vars=True)))
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match the model: missing {missing}, unexpected {unexpected}")
    for name, target in own.items():
        piece = local_piece(state[name], target, name in experts, mesh)
        local = target.to_local() if isinstance(target, DTensor) else target
        local.copy_(piece.to_local() if isinstance(piece, DTensor) else piece)


def parameter_names(optimizer: torch.optim.Optimizer, model: nn.Module) -> list[str]:
    """The name of each of the optimizer's parameters, in its state dict's index order."""
    names = {id(param): name for name, param in model.named_parameters()}
    return [names[id(param)] for group in optimizer.param_groups for param in group["params"]]


def gathered_optimizer_state(optimizer: torch.optim.Optimizer, model: nn.Module, mesh: ParallelMesh) -> dict:
    """optimizer.state_dict() with every moment the full single-process tensor (scalars such as `step` as they
    are); every rank takes part and gets it."""
    experts, names = expert_block_names(model), parameter_names(optimizer, model)
    saved = optimizer.state_dict()
    state = {index: {key: full_tensor(value, names[index] in experts, mesh) if value.dim() else value
                     for key, value in entries.items()}
             for index, entries in saved["state"].items()}
    return {"state": state, "param_groups": saved["param_groups"]}


def local_optimizer_state(full_state: dict, optimizer: torch.optim.Optimizer, model: nn.Module,
                          mesh: ParallelMesh) -> dict:
    """A gathered (or single-process) AdamW state dict cut to this rank's pieces, ready for load_state_dict."""
    experts, names = expert_block_names(model), parameter_names(optimizer, model)
    params = [param for group in optimizer.param_groups for param in group["params"]]
    state = {index: {key: local_piece(value, params[index], names[index] in experts, mesh) if value.dim() else value
                     for key, value in entries.items()}
             for index, entries in full_state["state"].items()}
    return {"state": state, "param_groups": full_state["param_groups"]}
