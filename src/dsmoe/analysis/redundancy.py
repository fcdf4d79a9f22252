"""Redundancy between a layer's routed experts: do they compute the same thing? The cosine similarity of their
outputs on the same inputs (every expert applied to every sampled token, whatever the router chose), and of their
weights. Fine-grained segmentation with shared experts is meant to make both low (DeepSeekMoE Sec. 3)."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from dsmoe.analysis.hooks import hooked
from dsmoe.model.moe import ExpertBatch


def cosine_matrix(rows_EX: torch.Tensor) -> np.ndarray:
    """[E, E] cosine similarity between the rows."""
    unit_EX = torch.nn.functional.normalize(rows_EX.double(), dim=-1)
    return (unit_EX @ unit_EX.T).cpu().numpy()


def similarity_summary(similarity_EE: np.ndarray) -> dict:
    """The matrix, the mean and max of its off-diagonal entries, and the most similar pair."""
    n = len(similarity_EE)
    off = similarity_EE[~np.eye(n, dtype=bool)]
    masked = np.where(np.eye(n, dtype=bool), -np.inf, similarity_EE)
    pair = np.unravel_index(int(np.argmax(masked)), masked.shape) if n > 1 else (0, 0)
    return {"matrix": similarity_EE.tolist(), "mean_off_diagonal": float(off.mean()) if off.size else 0.0,
            "max_off_diagonal": float(off.max()) if off.size else 0.0, "max_pair": [int(pair[0]), int(pair[1])]}


@torch.no_grad()
def every_expert_on(moe: nn.Module, x_RD: torch.Tensor) -> torch.Tensor:
    """[E, R, D]: each routed expert's output on every row of x_RD, unweighted, through the layer's own kernel."""
    n_experts = moe.experts.gate_up_proj.shape[0]
    batch = ExpertBatch.equal_blocks(x_RD.unsqueeze(0).expand(n_experts, -1, -1).contiguous())
    return moe.experts(batch).view(n_experts, *x_RD.shape)


def expert_output_similarity(moe: nn.Module, x_RD: torch.Tensor) -> np.ndarray:
    """[E, E]: the mean over the R inputs of the cosine similarity between two experts' outputs."""
    unit_ERD = torch.nn.functional.normalize(every_expert_on(moe, x_RD).double(), dim=-1)
    return torch.einsum("ard,brd->ab", unit_ERD, unit_ERD).div(len(x_RD)).cpu().numpy()


def expert_weight_similarity(moe: nn.Module) -> np.ndarray:
    """[E, E]: cosine similarity of the experts' flattened weights (gate, up and down projections together)."""
    experts = moe.experts
    return cosine_matrix(torch.cat([experts.gate_up_proj.detach().flatten(1), experts.down_proj.detach().flatten(1)], 1))


@torch.no_grad()
def moe_inputs(model: nn.Module, batches: Iterable[torch.Tensor], max_tokens: int) -> dict[int, torch.Tensor]:
    """Up to max_tokens input rows of every MoE layer (what its router and experts see), captured by hooks."""
    layers = {index: block.ffn for index, block in enumerate(model.layers) if block.is_moe}
    caught: dict[int, list[torch.Tensor]] = {index: [] for index in layers}

    def catch(moe: nn.Module, args: tuple, index: int) -> None:
        caught[index].append(args[0].flatten(0, -2).detach())

    handles = [moe.register_forward_pre_hook(functools.partial(catch, index=index)) for index, moe in layers.items()]
    device = next(model.parameters()).device
    with hooked(model, handles):
        for ids_BL in batches:
            model(ids_BL.to(device))
            if sum(map(len, caught[next(iter(layers))])) >= max_tokens:
                break
    return {index: torch.cat(rows)[:max_tokens] for index, rows in caught.items() if rows}


def redundancy_numbers(model: nn.Module, batches: Iterable[torch.Tensor], max_tokens: int = 2048) -> dict[str, dict]:
    """{layer: {"outputs": summary, "weights": summary}} (see similarity_summary) for every MoE layer."""
    inputs = moe_inputs(model, batches, max_tokens)
    return {str(index): {"outputs": similarity_summary(expert_output_similarity(model.layers[index].ffn, x_RD)),
                         "weights": similarity_summary(expert_weight_similarity(model.layers[index].ffn))}
            for index, x_RD in inputs.items()}
