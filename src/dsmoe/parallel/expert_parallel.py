"""Expert parallelism: the token dispatcher that sends each token to the ep ranks holding its chosen experts and
brings their outputs back, by all-to-all with uneven splits (dropless; the counts are exchanged first).

Rank r of an ep group of size P holds the routed experts [r * N'/P, (r + 1) * N'/P). A token is sent once to
each rank that holds at least one of its experts (DeepSeek-V2 Sec. 2.2.2 bounds these *devices per token*, M),
with the (local expert, weight) of each of its pairs there; that rank runs its experts through the same fused
kernel as a single process (ExpertBatch rows are the received tokens) and returns one row per received token,
its pairs' weighted outputs already summed. The hidden states travel in the experts' compute dtype (bf16 under
autocast). Both exchanges are differentiable (functional collectives' all_to_all_single_autograd), so backward
sends the gradients the reverse way. Each exchange is waited for before the next is issued (see `exchange`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed._functional_collectives import all_to_all_single_autograd, wait_tensor

from dsmoe.model.moe import ExpertBatch, TokenDispatcher, autocast_dtype
from dsmoe.parallel.traffic import LayerTraffic
from dsmoe.routers import Routing, SoftRouting


@dataclass
class ExchangedBatch(ExpertBatch):
    """An ExpertBatch of received tokens, with what combine needs to send the rows back."""

    sent_token_index_R: torch.Tensor  # [rows sent] the local token of each row this rank sent, in send order
    rows_sent: list[int]  # per ep rank
    rows_received: list[int]  # per ep rank
    n_tokens: int


def all_to_all_counts(counts_PX: torch.Tensor, group: dist.ProcessGroup) -> torch.Tensor:
    """[P, X] int64 counts for each rank -> [P, X] the counts each rank had for this one (X: the rows, then the
    pairs of each local expert)."""
    received_PX = torch.empty_like(counts_PX)
    dist.all_to_all_single(received_PX, counts_PX, group=group)
    return received_PX


def exchange(x: torch.Tensor, received: list[int], sent: list[int], group: dist.ProcessGroup) -> torch.Tensor:
    """Differentiable all-to-all of x's rows, finished before it returns: of two left in flight on one group, a Gloo
    timeout (a rank stopped answering) fails the other with "Application timeout caused pair closure", not itself."""
    return wait_tensor(all_to_all_single_autograd(x, received, sent, group))


class ExpertParallelDispatcher(TokenDispatcher):
    """Dispatch and combine over the ep group `group`; records the layer's traffic in `traffic`."""

    def __init__(self, n_experts: int, group: dist.ProcessGroup):
        super().__init__(n_experts)
        self.group = group
        self.ep_size, self.ep_rank = group.size(), dist.get_rank(group)
        self.experts_per_rank = n_experts // self.ep_size
        self.traffic = LayerTraffic()

    def dispatch(self, x_TD: torch.Tensor, routing: Routing | SoftRouting) -> ExchangedBatch:
        if not isinstance(routing, Routing):
            raise TypeError(f"expert parallelism needs token-expert pairs, not {type(routing).__name__}")
        n_tokens, ep = x_TD.shape[0], self.ep_size
        order_S = torch.argsort(routing.expert_index_S, stable=True)  # expert order is rank order too
        token_S, expert_S = routing.token_index_S[order_S], routing.expert_index_S[order_S]
        weight_S = routing.weight_S.index_select(0, order_S)
        rank_S = expert_S // self.experts_per_rank
        # one row per (rank, token): sorted by rank, then token
        row_key_R, row_of_pair_S = torch.unique(rank_S * n_tokens + token_S, return_inverse=True)
        rows_per_rank_P = torch.bincount(row_key_R // n_tokens, minlength=ep)
        pairs_per_expert_E = torch.bincount(expert_S, minlength=self.n_experts)
        first_row_P = torch.cumsum(rows_per_rank_P, 0) - rows_per_rank_P
        row_in_chunk_S = row_of_pair_S - first_row_P[rank_S]
        counts_PX = torch.cat([rows_per_rank_P[:, None], pairs_per_expert_E.view(ep, -1)], dim=1)
        received_PX = all_to_all_counts(counts_PX, self.group)
        rows_sent, rows_received = counts_PX[:, 0].tolist(), received_PX[:, 0].tolist()
        pairs_sent, pairs_received = counts_PX[:, 1:].sum(1).tolist(), received_PX[:, 1:].sum(1).tolist()

        sent_token_R = row_key_R % n_tokens
        x_RD = x_TD.to(autocast_dtype(x_TD)).index_select(0, sent_token_R)
        x_received = exchange(x_RD, rows_received, rows_sent, self.group)
        weight_received = exchange(weight_S, pairs_received, pairs_sent, self.group)
        row_received = torch.empty(sum(pairs_received), dtype=torch.long, device=x_TD.device)
        dist.all_to_all_single(row_received, row_in_chunk_S, pairs_received, pairs_sent, group=self.group)

        batch = self.received_pairs(x_received, received_PX, row_received, weight_received)
        self.traffic.add_dispatch(self.ep_rank, rows_sent, rows_received, pairs_sent, pairs_received,
                                  x_RD.shape[-1] * x_RD.element_size(), sent_token_R, n_tokens)
        return ExchangedBatch(batch.x_RD, batch.row_index_S, batch.weight_S, batch.offsets_E, sent_token_R,
                              rows_sent, rows_received, n_tokens)

    def received_pairs(self, x_RD: torch.Tensor, received_PX: torch.Tensor, row_in_chunk_S: torch.Tensor,
                       weight_S: torch.Tensor) -> ExpertBatch:
        """The received pairs (grouped by source rank, then local expert) in local-expert order, each reading its
        row of the received tokens."""
        local_experts = torch.arange(self.experts_per_rank, device=x_RD.device).repeat(self.ep_size)
        expert_S = local_experts.repeat_interleave(received_PX[:, 1:].reshape(-1), output_size=row_in_chunk_S.shape[0])
        source_S = torch.arange(self.ep_size, device=x_RD.device).repeat_interleave(
            received_PX[:, 1:].sum(1), output_size=row_in_chunk_S.shape[0])
        first_row_P = torch.cumsum(received_PX[:, 0], 0) - received_PX[:, 0]
        return ExpertBatch.from_pairs(x_RD, first_row_P[source_S] + row_in_chunk_S, expert_S, weight_S,
                                      self.experts_per_rank)

    def combine(self, rows_RD: torch.Tensor, batch: ExchangedBatch, routing: Routing | SoftRouting) -> torch.Tensor:
        returned_RD = exchange(rows_RD, batch.rows_sent, batch.rows_received, self.group)
        self.traffic.add_combine(self.ep_rank, batch.rows_received, batch.rows_sent,
                                 rows_RD.shape[-1] * rows_RD.element_size())
        out_TD = returned_RD.new_zeros(batch.n_tokens, returned_RD.shape[-1])
        return out_TD.index_add(0, batch.sent_token_index_R, returned_RD)
