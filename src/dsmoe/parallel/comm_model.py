"""The expert-parallel all-to-all volume a config predicts: bytes per token per MoE layer and the time they take
on a link, from the ranks a token's experts fall on, and the exact bytes of measured row and pair counts (what
traffic.py records).

Notation: N routed experts per MoE layer, K chosen per token, P ep ranks holding N/P consecutive experts each,
hidden size D, hidden states of b bytes (the experts' compute dtype: 4 for fp32, 2 under bf16 autocast).
Device- or node-limited routing (DeepSeek-V2 Sec. 2.2.2, DeepSeek-V3 Sec. 2.1.2) first picks M = topk_group of
n_group groups of consecutive experts, then K experts within them.

The dispatcher (expert_parallel.py) sends a token once to each rank holding any of its experts, with its pairs'
weight and row (PAIR_BYTES each) there, and that rank returns one D-row per received token; a rank's own chunk
never leaves it. So per token, forward:

    bytes = 2 * remote_ranks * D * b + remote_pairs * PAIR_BYTES        (dispatch + combine, pair metadata)

The token's own rank is any of the P equally likely, independent of its experts, so remote_ranks = ranks * (P - 1)
/ P and remote_pairs = K * (P - 1) / P. Backward moves the same bytes again. `ranks` comes from uniform routing
(ExpertPlacement.ranks_per_token, exact) or from the router's own group rule on sampled scores
(routed_ranks_per_token): the two agree without a group limit, and with M >= 2 groups the router's rule reaches
more of them than uniform choice does, since a group is chosen for its best experts, which then tend to be among
the token's K.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import torch

from dsmoe.config import ModelConfig
from dsmoe.parallel.traffic import PAIR_BYTES
from dsmoe.routers.softmax_topk import limit_to_groups


@dataclass(frozen=True)
class ExpertPlacement:
    """N experts over P ranks and the routing's group limit; refuses (naming the fields) what does not divide.

    n_group == 1 is routing without a group limit (topk_group is then 1). Groups and ranks must nest: n_group a
    multiple of ep (a rank holds several whole groups) or a divisor of it (a group, e.g. V3's node, spans several
    whole ranks); otherwise a rank would hold parts of groups of different sizes.
    """

    n_experts: int
    top_k: int
    ep: int
    n_group: int = 1
    topk_group: int = 1

    def __post_init__(self) -> None:
        n, k, ep, groups, chosen = self.n_experts, self.top_k, self.ep, self.n_group, self.topk_group
        for name, value in (("ep", ep), ("n_group", groups)):
            if n % value:
                raise ValueError(f"{name}={value} does not divide n_routed_experts={n}")
        if groups % ep and ep % groups:
            raise ValueError(f"n_group={groups} and ep={ep} do not nest (one must divide the other), so the "
                             "experts of a rank are not whole groups nor whole parts of one group")
        if not 1 <= chosen <= groups or (groups == 1 and chosen != 1):
            raise ValueError(f"topk_group={chosen} must be in [1, n_group={groups}]")
        if k > self.reachable_experts:
            raise ValueError(f"n_activated_experts={k} exceeds the {self.reachable_experts} experts in "
                             f"topk_group={chosen} of n_group={groups} groups")

    @classmethod
    def of(cls, config: ModelConfig, ep: int) -> "ExpertPlacement":
        """`config`'s routed experts over ep ranks, with its own group limit."""
        return cls(config.n_routed_experts, config.n_activated_experts, ep, config.n_group, config.topk_group)

    @property
    def experts_per_rank(self) -> int:
        return self.n_experts // self.ep

    @property
    def reachable_experts(self) -> int:
        """The experts of the topk_group chosen groups, among which the K are chosen."""
        return self.topk_group * self.n_experts // self.n_group

    def ranks_per_token(self) -> float:
        """Expected ranks (own included) holding a token's K experts, under uniform routing: M of the n_group
        groups uniformly, then K distinct experts uniformly among their E_M = M * N / n_group experts.

        A rank's N/P experts lie in g = max(1, n_group / P) groups, u = N / (P g) in each. j of those g groups are
        chosen with the hypergeometric probability h(j) = C(g, j) C(n_group - g, M - j) / C(n_group, M), and then
        the rank is missed with probability C(E_M - j u, K) / C(E_M, K). So ranks = P * (1 - sum_j h(j) *
        C(E_M - j u, K) / C(E_M, K)), which is
          without a group limit (n_group = M = 1):   P * (1 - C(N - N/P, K) / C(N, K));
          one group per rank (n_group = P):          M * (1 - C(M N/P - N/P, K) / C(M N/P, K));
          groups of several ranks (n_group | P):     (M P / n_group) * (1 - C(E_M - N/P, K) / C(E_M, K)).
        """
        groups, chosen, k = self.n_group, self.topk_group, self.top_k
        groups_per_rank = max(1, groups // self.ep)
        experts_per_piece = self.experts_per_rank // groups_per_rank
        reachable = self.reachable_experts
        missed = sum(comb(groups_per_rank, j) * comb(groups - groups_per_rank, chosen - j) / comb(groups, chosen)
                     * comb(reachable - j * experts_per_piece, k) / comb(reachable, k)
                     for j in range(min(groups_per_rank, chosen) + 1))
        return self.ep * (1 - missed)

    def remote_pairs_per_token(self) -> float:
        """Each of the K pairs' experts is on the token's own rank with probability 1/P."""
        return self.top_k * (self.ep - 1) / self.ep


def bytes_moved(rows_dispatched: int, rows_combined: int, pairs: int, hidden_size: int, dtype_bytes: int) -> int:
    """Exact bytes one side of a layer's exchange moves: hidden-state rows out in dispatch, rows back in combine,
    and the pairs' metadata. A rank's bytes_sent: the rows and pairs it dispatched to other ranks and the rows it
    returned to them; summed over ranks, rows_dispatched = rows_combined = every remote row."""
    return (rows_dispatched + rows_combined) * hidden_size * dtype_bytes + pairs * PAIR_BYTES


def routed_ranks_per_token(placement: ExpertPlacement, scores_TE: torch.Tensor, group_score_size: int = 1) -> float:
    """Mean ranks (own included) holding each token's experts when they are chosen from scores_TE by the routers'
    rule (softmax_topk, sigmoid_topk): the topk_group groups with the highest sum of their best group_score_size
    scores (dsmoe.routers.softmax_topk.limit_to_groups), then the top K within them. iid random scores stand for a
    router with random weights: without a group limit that is uniform routing, with one it is not (module docstring)."""
    choice_TE = limit_to_groups(scores_TE, placement.n_group, placement.topk_group, group_score_size)
    rank_TK = choice_TE.topk(placement.top_k, dim=-1).indices // placement.experts_per_rank
    hit_TP = torch.zeros(scores_TE.shape[0], placement.ep, dtype=torch.bool).scatter_(1, rank_TK, True)
    return float(hit_TP.sum(dim=1).double().mean())


@dataclass(frozen=True)
class CommVolume:
    """The predicted forward all-to-all volume of a model's MoE layers over P ep ranks (module docstring)."""

    placement: ExpertPlacement
    ranks_per_token: float  # own included
    hidden_size: int
    dtype_bytes: int
    n_moe_layers: int

    @classmethod
    def of(cls, config: ModelConfig, placement: ExpertPlacement, dtype_bytes: int,
           ranks_per_token: float | None = None) -> "CommVolume":
        """`config`'s layers over `placement`, uniform routing's ranks per token unless given."""
        ranks = placement.ranks_per_token() if ranks_per_token is None else ranks_per_token
        return cls(placement, ranks, config.hidden_size, dtype_bytes, len(config.moe_layers))

    @property
    def remote_ranks_per_token(self) -> float:
        """Ranks other than the token's own: its own rank is any of the P equally likely, so (P - 1) / P of them."""
        return self.ranks_per_token * (self.placement.ep - 1) / self.placement.ep

    @property
    def bytes_per_token(self) -> float:
        """Per MoE layer: 2 * remote_ranks * D * b + K (P - 1) / P * PAIR_BYTES."""
        return (2 * self.remote_ranks_per_token * self.hidden_size * self.dtype_bytes
                + self.placement.remote_pairs_per_token() * PAIR_BYTES)

    @property
    def bytes_per_token_per_step(self) -> float:
        """Over all MoE layers of one forward."""
        return self.bytes_per_token * self.n_moe_layers

    def seconds_per_layer(self, tokens_per_device: int, bandwidth_bytes_per_s: float) -> float:
        """One MoE layer's forward exchange of a micro-batch: what each device sends over its link."""
        return all_to_all_seconds(tokens_per_device, self.bytes_per_token, bandwidth_bytes_per_s)


def all_to_all_seconds(tokens_per_device: int, bytes_per_token: float, bandwidth_bytes_per_s: float) -> float:
    """tokens_per_device * bytes_per_token / bandwidth: the bytes a device sends, at its link's bandwidth (no
    latency, no overlap with compute)."""
    return tokens_per_device * bytes_per_token / bandwidth_bytes_per_s
