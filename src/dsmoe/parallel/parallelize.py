"""parallelize(model, mesh): expert parallelism and FSDP2 applied to a plain model from outside, in place.

Every rank builds the same full model (same seed, so each rank's weights are the single-process ones); then:
1. each MoE layer keeps only its ep rank's block of routed experts and gets the all-to-all dispatcher
   (expert_parallel.py);
2. each layer's routed-expert block is FSDP2-sharded over the dp ranks that hold the same block (its ep group's
   peers in the other dp groups): the experts are most of an MoE model's weights, and the dp ranks holding a
   block are the only ranks that need it, so sharding it over them cuts its memory by dp while its all-gather
   stays within that block's holders;
3. every decoder block, MTP module and the rest (embeddings, final norm, head) is FSDP2-sharded over all
   ep * dp ranks, which all compute with them on their own tokens.
Gradients are summed, not averaged, over the ranks (the training step scales each rank's loss by its share of
the global batch, dsmoe.train.step), so a parallel step's gradient is exactly the single-process one.
"""

from __future__ import annotations

from torch import nn
from torch.distributed.fsdp import FSDPModule, fully_shard

from dsmoe.config.parallel_config import ParallelConfig
from dsmoe.model.moe import RoutedExperts
from dsmoe.model.moe import MoE
from dsmoe.parallel.expert_parallel import ExpertParallelDispatcher
from dsmoe.parallel.mesh import ParallelMesh


def moe_layers(model: nn.Module) -> list[MoE]:
    return [module for module in model.modules() if isinstance(module, MoE)]


def keep_expert_block(experts: RoutedExperts, rank: int, size: int) -> None:
    """Replace the stacked expert weights [N', ...] by this rank's block [N'/size, ...]."""
    for name, weights in list(experts.named_parameters(recurse=False)):
        per_rank = weights.shape[0] // size
        block = weights.detach()[rank * per_rank:(rank + 1) * per_rank].clone()
        setattr(experts, name, nn.Parameter(block, requires_grad=weights.requires_grad))


def sum_gradients(model: nn.Module) -> None:
    """Every FSDP module reduces gradients as a plain sum (SUM-only collectives, which Gloo supports too)."""
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)


def parallelize(model: nn.Module, mesh: ParallelMesh, config: ParallelConfig) -> nn.Module:
    """Shard `model` in place over `mesh` (see the module docstring) and return it."""
    ep_group, ep_rank = mesh.ep.get_group(), mesh.ep.get_local_rank()
    for moe in moe_layers(model):
        if config.ep > 1:
            keep_expert_block(moe.experts, ep_rank, config.ep)
            moe.dispatcher = ExpertParallelDispatcher(moe.dispatcher.n_experts, ep_group)
        fully_shard(moe.experts, mesh=mesh.dp)
    for block in model.layers:
        fully_shard(block, mesh=mesh.world)
    for module in model.mtp.layers if model.mtp is not None else ():
        fully_shard(module, mesh=mesh.world)
    fully_shard(model, mesh=mesh.world)
    sum_gradients(model)
    return model
