"""How a run is spread over processes: the [parallel] section of a run config."""

from __future__ import annotations

from dataclasses import dataclass

from dsmoe.config.model_config import ModelConfig
from dsmoe.field_rules import POSITIVE, POSITIVE_INT, check_fields
from dsmoe.registry import ROUTERS

FIELD_RULES = dict(ep=POSITIVE_INT, dp=POSITIVE_INT, timeout_s=POSITIVE)


@dataclass
class ParallelConfig:
    """Expert and data parallelism over the processes torchrun starts (world size = ep * dp).

    ep: expert-parallel degree: each MoE layer's routed experts are split into ep equal blocks of consecutive
        experts, one per rank of an ep group, and tokens travel to them by all-to-all (n_routed_experts must be a
        multiple of ep). Default 1.
    dp: data-parallel degree over ep groups: dp groups of ep ranks each see their own share of every batch.
        Everything but the routed experts is sharded with FSDP2 over all ep * dp ranks, the routed experts over
        the dp ranks holding the same block. Default 1.
    timeout_s: how long a collective waits for the other ranks before the job fails, naming the cause (a rank
        that died or hangs). Default 300.
    """

    ep: int = 1
    dp: int = 1
    timeout_s: float = 300.0

    def __post_init__(self) -> None:
        check_fields(self, FIELD_RULES)

    @property
    def world_size(self) -> int:
        return self.ep * self.dp


def check_layout(parallel: ParallelConfig, model: ModelConfig, batch_size: int) -> None:
    """Refuse, naming the fields, a layout the model or the batch cannot be split into (before any process starts
    work)."""
    ep, world = parallel.ep, parallel.world_size
    if model.moe_layers and model.n_routed_experts % ep:
        raise ValueError(f"parallel.ep={ep} does not divide model.n_routed_experts={model.n_routed_experts} (each "
                         "ep rank holds n_routed_experts / ep consecutive experts)")
    if ep > 1 and model.moe_layers and ROUTERS.traits(model.router).slot_based:
        raise ValueError(f"model.router={model.router!r} cannot run expert-parallel (parallel.ep={ep}): its slots "
                         "mix every token of a sequence, so there are no token-expert pairs to send; use ep=1")
    if ep > 1 and model.n_devices > 1 and model.n_devices != ep:
        raise ValueError(f"model.n_devices={model.n_devices} must equal parallel.ep={ep} (the device-level losses "
                         "balance the ep ranks that hold the experts) or be 1")
    if batch_size < world:
        raise ValueError(f"train.batch_size={batch_size} is smaller than parallel.ep * parallel.dp = {world}: "
                         "every rank needs at least one sequence of each micro-batch")
