"""Noisy top-k gating (Shazeer et al. 2017, Sec. 2.1, Eq. 3-5), balanced by its own losses (Sec. 4)."""

from __future__ import annotations

import torch
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.registry import ROUTERS
from dsmoe.routers.base import Router, Routing
from dsmoe.routers.importance_load import importance_load_losses
from dsmoe.routers.softmax_topk import token_choice_routing


class NoisyTopKRouter(Router):
    """H(x)_i = (x W_g)_i + N(0,1) * Softplus((x W_noise)_i); G(x) = Softmax(KeepTopK(H(x), k)).

    Noise is added in training only. Balance: the paper's importance and load losses (importance_load.py) with
    noisy_topk_balance="importance_load", or the expert-level loss with P_i from Softmax(H(x)) over all experts.
    """

    traits = ROUTERS.traits("noisy_topk")

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.noise_weight = nn.Parameter(torch.empty(self.n_experts, config.hidden_size))

    @torch.no_grad()
    def init_weights(self, std: float) -> None:
        """W_g = W_noise = 0, not N(0, std): "no signal and some uniformly-distributed noise", so every expert
        starts with the same expected load (Shazeer et al. 2017 App. A; the noise std is Softplus(0) = ln 2)."""
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.noise_weight)

    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> Routing:
        clean_TE = logits_TE = self.logits(x_TD)
        if self.training:
            with torch.autocast(device_type=x_TD.device.type, enabled=False):
                noise_std_TE = nn.functional.softplus(nn.functional.linear(x_TD.float(), self.noise_weight.float()))
            logits_TE = clean_TE + torch.randn_like(clean_TE) * noise_std_TE
        top_logits_TK, expert_indices_TK = logits_TE.topk(self.top_k, dim=-1)
        weights_TK = top_logits_TK.softmax(dim=-1)
        own_losses = None
        if self.training and self.config.noisy_topk_balance == "importance_load":
            own_losses = importance_load_losses(self.config, clean_TE, logits_TE, noise_std_TE, expert_indices_TK,
                                                weights_TK)
        return token_choice_routing(self.config, expert_indices_TK, weights_TK, logits_TE.softmax(dim=-1),
                                    logits_TE, batch_size, self.training, self.balance_counts_E, own_losses)
