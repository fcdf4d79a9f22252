"""Device-level token dropping (DeepSeek-V2 Sec. 2.2.4): in training, every device keeps at most its average
computational budget of token-expert pairs (times device_capacity_factor) and drops its lowest-affinity pairs
beyond it, except the pairs of the never-dropped sequences. Devices are the config's n_devices groups of
consecutive experts, as for the device-level balance loss."""

from __future__ import annotations

import dataclasses
import math

import torch

from dsmoe.config import ModelConfig
from dsmoe.routers.base import Routing, RouterStats, count_per_expert
from dsmoe.routers.capacity import position_in_expert

HASH_PRIME = 2**31 - 1  # the modulus of the sequence hash; its weights are below it, so no product overflows int64


def device_capacity(n_pairs: int, n_devices: int, capacity_factor: float) -> int:
    """Pairs a device may keep: ceil(capacity_factor * T K' / D), its average budget times the factor."""
    return math.ceil(capacity_factor * n_pairs / n_devices)


def never_dropped_sequences(token_ids_BL: torch.Tensor, share: float) -> torch.Tensor:
    """[B] bool: u_b = (sum_l w_l (x_{b,l} + 1) mod p) / p with fixed random w_l, protected when u_b < share.

    A hash of the tokens, not a random draw, so every layer protects the same sequences without being told.
    """
    seq_len = token_ids_BL.shape[1]
    weights_L = torch.randint(1, HASH_PRIME, (seq_len,), generator=torch.Generator().manual_seed(0))
    terms_BL = (token_ids_BL + 1) * weights_L.to(token_ids_BL.device) % HASH_PRIME
    return terms_BL.sum(dim=1) % HASH_PRIME < share * HASH_PRIME


def keep_within_capacity(device_S: torch.Tensor, affinity_S: torch.Tensor, protected_S: torch.Tensor,
                         n_devices: int, capacity: int) -> torch.Tensor:
    """[S] bool: per device, every protected pair, then the highest-affinity others (ties: earlier pairs first)
    while the device holds fewer than `capacity` pairs."""
    priority_S = torch.where(protected_S, torch.inf, affinity_S.detach().float())
    order_S = torch.sort(priority_S, descending=True, stable=True).indices
    rank_S = torch.empty_like(order_S)
    rank_S[order_S] = position_in_expert(device_S[order_S], n_devices)
    return protected_S | (rank_S < capacity)


def drop_over_device_capacity(config: ModelConfig, routing: Routing, affinity_TK: torch.Tensor,
                              token_ids_T: torch.Tensor, batch_size: int, training: bool) -> Routing:
    """The routing less the pairs over their device's capacity; unchanged in eval mode or when it is off.
    `routing` holds token_choice_routing's pairs, token-major, so pair s has affinity affinity_TK.flatten()[s]."""
    if not training or config.device_capacity_factor is None:
        return routing
    n_devices = config.n_devices
    device_S = routing.expert_index_S // (config.n_routed_experts // n_devices)
    protected_B = never_dropped_sequences(token_ids_T.reshape(batch_size, -1), config.never_drop_share)
    protected_S = protected_B[routing.token_index_S // (token_ids_T.numel() // batch_size)]
    capacity = device_capacity(device_S.numel(), n_devices, config.device_capacity_factor)
    keep_S = keep_within_capacity(device_S, affinity_TK.reshape(-1), protected_S, n_devices, capacity)
    expert_index_S = routing.expert_index_S[keep_S]
    stats = RouterStats(count_per_expert(expert_index_S, config.n_routed_experts), (~keep_S).sum())
    return dataclasses.replace(routing, token_index_S=routing.token_index_S[keep_S], expert_index_S=expert_index_S,
                               weight_S=routing.weight_S[keep_S], stats=stats)
