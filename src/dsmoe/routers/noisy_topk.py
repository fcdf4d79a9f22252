"""Noisy top-k gating (Shazeer et al. 2017, Sec. 2.1, Eq. 3-5)."""

from __future__ import annotations

import torch
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.routers.base import Router, Routing
from dsmoe.routers.token_choice import token_choice_routing


class NoisyTopKRouter(Router):
    """H(x)_i = (x W_g)_i + N(0,1) * Softplus((x W_noise)_i); G(x) = Softmax(KeepTopK(H(x), k)).

    Noise is added in training only. The balance loss uses Softmax(H(x)) over all experts as P_i.
    """

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.noise_weight = nn.Parameter(torch.empty(self.n_experts, config.hidden_size))

    @torch.no_grad()
    def init_weights(self, std: float) -> None:
        super().init_weights(std)
        nn.init.zeros_(self.noise_weight)  # no noise at the start, as Shazeer et al. 2017

    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> Routing:
        logits_TE = self.logits(x_TD)
        if self.training:
            with torch.autocast(device_type=x_TD.device.type, enabled=False):
                noise_scale_TE = nn.functional.softplus(nn.functional.linear(x_TD.float(), self.noise_weight.float()))
            logits_TE = logits_TE + torch.randn_like(logits_TE) * noise_scale_TE
        top_logits_TK, expert_indices_TK = logits_TE.topk(self.top_k, dim=-1)
        weights_TK = top_logits_TK.softmax(dim=-1)
        return token_choice_routing(self.config, expert_indices_TK, weights_TK, logits_TE.softmax(dim=-1),
                                    logits_TE, batch_size, self.training)
