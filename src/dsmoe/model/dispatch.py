"""The token dispatcher: the seam between routing and the routed experts.

The MoE layer runs route -> dispatch -> experts -> combine. `dispatch` turns a routing into the experts' work
in expert order (an ExpertBatch: which rows each expert reads, how many, with what weight); `combine` turns the
experts' output rows back into one output per token. The local dispatcher leaves the permutation lazy: the
fused kernel gathers the rows, runs the experts and scatters the weighted outputs back in one op, so nothing
is copied in between. A dispatcher that moves tokens between devices (an all-to-all to the ranks holding each
expert, and back) is swapped in from outside the model by setting `MoE.dispatcher`; the model never knows ranks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from dsmoe.kernels import ExpertBatch
from dsmoe.routers import Routing, SoftRouting


class TokenDispatcher(ABC):
    """Permutes a layer's tokens to its experts and combines what comes back."""

    def __init__(self, n_experts: int):
        self.n_experts = n_experts  # the layer's routed experts, over all devices

    @abstractmethod
    def dispatch(self, x_TD: torch.Tensor, routing: Routing | SoftRouting) -> ExpertBatch:
        """The work of the experts this process holds, sorted by expert."""

    @abstractmethod
    def combine(self, rows_RD: torch.Tensor, batch: ExpertBatch, routing: Routing | SoftRouting) -> torch.Tensor:
        """[T, D]: each token's routed output, from the experts' rows_RD for `batch` (as dispatch returned it)."""


class LocalDispatcher(TokenDispatcher):
    """Every expert in this process: the routing's own expert order, combined in place."""

    def dispatch(self, x_TD: torch.Tensor, routing: Routing | SoftRouting) -> ExpertBatch:
        return routing.expert_batch(x_TD, self.n_experts)

    def combine(self, rows_RD: torch.Tensor, batch: ExpertBatch, routing: Routing | SoftRouting) -> torch.Tensor:
        return routing.combine(rows_RD, self.n_experts)
