"""DeepSeek-V4's hash-routed layers (Sec. 2.1, as transformers' DeepseekV4HashRouter): a frozen token-id -> experts
table chooses each token's K experts, and the learned gate weights the chosen ones."""

from __future__ import annotations

import torch

from dsmoe.config import ModelConfig
from dsmoe.registry import ROUTERS, RouterTraits
from dsmoe.routers.affinity import AFFINITY_SCORES, normalised
from dsmoe.routers.base import Router, Routing, RouterStats, count_per_expert, no_drops, topk_pairs
from dsmoe.routers.softmax_topk import normalise_and_scale

TABLE_SEED = 4096  # layer l's table is drawn with seed TABLE_SEED + l


class HashGateRouter(Router):
    """The experts of token id v are tid2eid[v] (K distinct ones); their weights are the gate's scores s_{i,t}
    (the scoring_func of the config's router) at those experts, renormalised when norm_topk_prob is set and times
    routed_scaling_factor, as that router weights its own choices.

    tid2eid is a persistent buffer [vocab_size, K], saved and loaded with the model: a loaded checkpoint keeps
    the table it was trained with (DeepSeek-V4's checkpoints ship theirs). A new router draws it with
    balanced_table (seeded by its layer), so two models with the same config route identically. The choice is
    the table's, so neither group limiting, device-level dropping, the expert bias nor a balance loss applies:
    the layer returns no aux losses and accumulates nothing between optimizer steps.
    """

    traits = RouterTraits()

    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__(config)
        self.scoring_func = ROUTERS.traits(config.router).scoring_func
        table_VK = balanced_table(config.vocab_size, self.n_experts, self.top_k, TABLE_SEED + layer_idx)
        self.register_buffer("tid2eid", table_VK.to(self.weight.device))

    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> Routing:
        scores_TE = AFFINITY_SCORES[self.scoring_func](self.logits(x_TD))
        expert_indices_TK = self.tid2eid[token_ids_T]
        weights_TK = normalise_and_scale(scores_TE.gather(1, expert_indices_TK), self.config)
        token_index, expert_index, weight = topk_pairs(expert_indices_TK, weights_TK)
        stats = RouterStats(count_per_expert(expert_index, self.n_experts), no_drops(x_TD.device))
        return Routing(token_index, expert_index, weight, {}, stats)

    def affinities(self, x_TD: torch.Tensor) -> torch.Tensor:
        return normalised(AFFINITY_SCORES[self.scoring_func](self.logits(x_TD)))

    why_experts_stay = "its layer chooses each token's experts by a fixed token-id table (n_hash_layers)"

    @property
    def can_disable_experts(self) -> bool:
        return False  # the table, not the scores, chooses


def balanced_table(vocab_size: int, n_experts: int, top_k: int, seed: int) -> torch.Tensor:
    """[vocab_size, top_k] int64: K distinct experts per token id, every expert given to floor or ceil of
    vocab_size * K / n_experts of the slots (balanced over the vocabulary).

    The slots, row after row, are dealt from a sequence of random permutations of the experts (torch.randperm from
    `seed`); a row that spans two permutations would repeat an expert, so the experts it already holds are moved
    to the end of the next permutation, which stays a permutation (every expert once per permutation: balanced).
    Drawn on the CPU whatever the default device (a meta or GPU build moves it).
    """
    generator = torch.Generator().manual_seed(seed)
    n_slots = vocab_size * top_k
    dealt, held = [], torch.empty(0, dtype=torch.long, device="cpu")  # held: what the row being dealt holds so far
    for start in range(0, n_slots, n_experts):
        order = torch.randperm(n_experts, generator=generator, device="cpu")
        repeats = torch.isin(order, held)
        order = torch.cat([order[~repeats], order[repeats]])[:n_slots - start]
        dealt.append(order)
        filled = (start + len(order)) % top_k  # slots of the next row dealt from this permutation, its last ones
        held = order[len(order) - filled:]
    return torch.cat(dealt).view(vocab_size, top_k)
