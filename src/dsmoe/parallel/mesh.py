"""The processes torchrun started, as a 2-D DeviceMesh ("dp", "ep"), with the backend their device needs."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from dsmoe.config.parallel_config import ParallelConfig

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_joined = False  # set by init_parallel, read by has_joined: a fact about this process, kept for its whole life


@dataclass
class ParallelMesh:
    """world: every rank, 1-D (what FSDP2 shards the dense weights over); grid: ("dp", "ep"), rank = dp * ep + ep
    index, so an ep group is ep consecutive ranks (one node, where all-to-all is fastest)."""

    world: DeviceMesh
    grid: DeviceMesh

    @property
    def ep(self) -> DeviceMesh:
        return self.grid["ep"]

    @property
    def dp(self) -> DeviceMesh:
        return self.grid["dp"]

    @property
    def device(self) -> torch.device:
        return torch.device(self.world.device_type, torch.cuda.current_device()) \
            if self.world.device_type == "cuda" else torch.device("cpu")


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in LAUNCH_VARIABLES)


def backend_for(device_type: str) -> str:
    """One code path, the collective library of the device: NCCL on CUDA GPUs, Gloo on CPUs."""
    return "nccl" if device_type == "cuda" else "gloo"


def check_launch(config: ParallelConfig) -> None:
    """Refuse a parallel config run without torchrun, or a world size that is not ep * dp, naming both."""
    if not launched_by_torchrun():
        missing = [name for name in LAUNCH_VARIABLES if name not in os.environ]
        raise ValueError(f"parallel.ep={config.ep} x parallel.dp={config.dp} needs {config.world_size} processes "
                         f"started by torchrun (missing {', '.join(missing)}): torchrun --nproc-per-node "
                         f"{config.world_size} -m dsmoe train ...")
    world_size = int(os.environ["WORLD_SIZE"])
    if world_size != config.world_size:
        raise ValueError(f"torchrun started {world_size} processes but parallel.ep={config.ep} x "
                         f"parallel.dp={config.dp} = {config.world_size}: set --nproc-per-node (times --nnodes) "
                         "to ep * dp")


def has_joined() -> bool:
    """Whether this process began to join a torchrun job (init_parallel): from then on a failure may be its own,
    not one that every rank meets alike."""
    return _joined


def init_parallel(config: ParallelConfig, device_type: str | None = None) -> ParallelMesh:
    """Join the job torchrun started (its env:// rendezvous) and build the mesh (see check_launch)."""
    global _joined
    check_launch(config)
    _joined = True
    world_size = int(os.environ["WORLD_SIZE"])
    device_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if not dist.is_initialized():
        dist.init_process_group(backend_for(device_type), timeout=datetime.timedelta(seconds=config.timeout_s))
    world = init_device_mesh(device_type, (world_size,), mesh_dim_names=("world",))
    grid = init_device_mesh(device_type, (config.dp, config.ep), mesh_dim_names=("dp", "ep"))
    return ParallelMesh(world, grid)
