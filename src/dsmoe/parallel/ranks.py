"""What the training loop asks of the processes it runs on, in one interface: a single process (`SingleProcess`,
every call the plain local one) or the ranks of a torchrun job (`ParallelRanks`). The loop has one code path;
only rank 0 writes (run directory, logs, checkpoints), and every decision that ends or skips a step is agreed."""

from __future__ import annotations

import gc
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from dsmoe.config.parallel_config import ParallelConfig
from dsmoe.parallel.expert_parallel import ExpertParallelDispatcher
from dsmoe.parallel.grad_norm import clip_grad_norm
from dsmoe.parallel.mesh import ParallelMesh, check_launch, init_parallel
from dsmoe.parallel.parallelize import moe_layers, parallelize
from dsmoe.parallel.state import (
    distinct_state,
    gathered_model_state,
    gathered_optimizer_state,
    load_model_state,
    local_optimizer_state,
)
from dsmoe.parallel.traffic import traffic_record
from dsmoe.routers.step_updates import ReduceSum
from dsmoe.runs import checkpoint as ckpt
from dsmoe.runs.layout import CheckpointDir
from dsmoe.runtime.devices import resolve_device


def unique_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """model's state dict with a tied tensor once, under its first name, ready for safetensors."""
    return {name: value.detach().contiguous() for name, value in distinct_state(model).items()}


class SingleProcess:
    """One process on one device: nothing to shard, reduce or agree on."""

    world_size, rank, is_writer = 1, 0, True
    reduce_sum: ReduceSum | None = None

    def __init__(self, device: torch.device = torch.device("cpu")):
        self.device = device

    def prepare(self, model: nn.Module) -> nn.Module:
        return model.to(self.device)

    def agree(self, flag: bool) -> bool:
        return flag

    def broadcast(self, value: Any) -> Any:
        return value

    def gather(self, value: Any) -> list[Any]:
        return [value]

    def barrier(self) -> None:
        pass

    def clip_grad_norm(self, model: nn.Module, max_norm: float) -> float:
        return float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))

    def model_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return unique_state(model)

    def optimizer_state(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> dict:
        return optimizer.state_dict()

    def load_weights(self, checkpoint: CheckpointDir, model: nn.Module) -> None:
        ckpt.load_weights(checkpoint, model)

    def local_optimizer_state(self, state: dict, optimizer: torch.optim.Optimizer, model: nn.Module) -> dict:
        return state

    def traffic(self, model: nn.Module, moe_layer_indices: list[int]) -> dict | None:
        return None

    def reset_traffic(self, model: nn.Module) -> None:
        pass

    def close(self) -> None:
        pass


class ParallelRanks:
    """The ranks of a torchrun job over a ("dp", "ep") mesh; the model is parallelized by `prepare`."""

    def __init__(self, config: ParallelConfig, device_type: str):
        self.mesh: ParallelMesh = init_parallel(config, device_type)
        self.config = config
        self.world_size, self.rank = dist.get_world_size(), dist.get_rank()
        self.is_writer = self.rank == 0
        self.device = self.mesh.device

    def reduce_sum(self, tensor: torch.Tensor) -> None:
        """Sum over every rank, in place (through the collective's device: NCCL reduces GPU tensors only)."""
        on_device = tensor.to(self.device)
        dist.all_reduce(on_device)
        if on_device is not tensor:
            tensor.copy_(on_device)

    def prepare(self, model: nn.Module) -> nn.Module:
        return parallelize(model.to(self.device), self.mesh, self.config)

    def agree(self, flag: bool) -> bool:
        """True on every rank when it is true on any (a stop request, the time budget)."""
        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value, on every rank."""
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's value, in rank order, on every rank."""
        values = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        dist.barrier()

    def clip_grad_norm(self, model: nn.Module, max_norm: float) -> float:
        return clip_grad_norm(model, max_norm)

    def model_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return gathered_model_state(model, self.mesh)

    def optimizer_state(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> dict:
        return gathered_optimizer_state(optimizer, model, self.mesh)

    def load_weights(self, checkpoint: CheckpointDir, model: nn.Module) -> None:
        load_model_state(model, ckpt.read_weights(checkpoint), self.mesh)

    def local_optimizer_state(self, state: dict, optimizer: torch.optim.Optimizer, model: nn.Module) -> dict:
        return local_optimizer_state(state, optimizer, model, self.mesh)

    def traffic(self, model: nn.Module, moe_layer_indices: list[int]) -> dict | None:
        """Every rank's traffic since the last call, per MoE layer (see traffic.py), then the counters restart."""
        dispatchers = expert_parallel_dispatchers(model)
        if not dispatchers:
            return None
        # X: traffic.FIELDS
        mine_ZX = torch.stack([dispatcher.traffic.as_tensor() for dispatcher in dispatchers]).to(self.device)
        self.reset_traffic(model)
        everyone_PZX = [torch.empty_like(mine_ZX) for _ in range(self.world_size)]
        dist.all_gather(everyone_PZX, mine_ZX)
        per_layer_ZPX = torch.stack(everyone_PZX).transpose(0, 1).cpu()
        return traffic_record(per_layer_ZPX, moe_layer_indices)

    def reset_traffic(self, model: nn.Module) -> None:
        for dispatcher in expert_parallel_dispatchers(model):
            dispatcher.traffic.reset()

    def close(self) -> None:
        """Free the collectives' state while the interpreter is whole: the sharded model's reference cycles hold
        tensors that Gloo's work objects share, and their destruction at interpreter exit can abort the process."""
        gc.collect()
        if dist.is_initialized():
            dist.destroy_process_group()


def expert_parallel_dispatchers(model: nn.Module) -> list[ExpertParallelDispatcher]:
    return [moe.dispatcher for moe in moe_layers(model) if isinstance(moe.dispatcher, ExpertParallelDispatcher)]


def in_parallel(config: ParallelConfig) -> bool:
    """Whether this run trains on several processes: the layout asks for them, or torchrun started them."""
    return config.world_size > 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank_device(config: ParallelConfig, device: str = "auto") -> torch.device:
    """The device this process trains on, for train.device `device`, checked before any process group is joined:
    on one process the device it names; on each of several (torchrun must have started exactly ep * dp of them) its
    LOCAL_RANK GPU ("auto", "cuda") or the CPU ("cpu", or "auto" without CUDA)."""
    if not in_parallel(config):
        return resolve_device(device, "train.device")
    check_launch(config)
    device_type = rank_device_type(device)
    return torch.device("cuda", int(os.environ["LOCAL_RANK"])) if device_type == "cuda" else torch.device("cpu")


def is_writer_rank(config: ParallelConfig) -> bool:
    """Whether this process writes the run: the only one, or rank 0 of a torchrun job (known before it joins)."""
    return not in_parallel(config) or os.environ.get("RANK") == "0"


def join_ranks(config: ParallelConfig, device: torch.device) -> SingleProcess | ParallelRanks:
    """The processes this run trains on, `device` (rank_device) being this one's."""
    if not in_parallel(config):
        return SingleProcess(device)
    return ParallelRanks(config, device.type)


def rank_device_type(device: str) -> str:
    """The device type every rank of a torchrun job uses for train.device `device`."""
    if device not in ("auto", "cuda", "cpu"):
        raise ValueError(f"train.device={device!r} names one device, but under torchrun each rank takes its "
                         "LOCAL_RANK GPU: use auto, cuda or cpu")
    return resolve_device(device, "train.device").type
