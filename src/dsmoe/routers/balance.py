"""Auxiliary balance losses, exactly as DeepSeekMoE (Sec. 3.3) and DeepSeek-V3 (Sec. 2.1.2) define them.

Notation: N' routed experts, K' experts chosen per token, T tokens, s_{i,t} the router's affinity of
token t for expert i. Under perfectly uniform routing the expert-level loss equals alpha_1 exactly.
transformers' `load_balancing_loss_func` (Mixtral, Qwen-MoE, OLMoE) is scaled differently: it
averages the one-hot top-k mask over tokens only, so it returns K' * sum_i f_i P_i (K' under uniform
routing, not 1), and its coefficient is not interchangeable with alpha_1.
"""

from __future__ import annotations

import torch

from dsmoe.config import ModelConfig


def expert_load_fraction(expert_indices_TK: torch.Tensor, n_experts: int) -> torch.Tensor:
    """f_i = N' / (K' T) * sum_t 1(token t chooses expert i)  (DeepSeekMoE Eq. 13)."""
    n_tokens, top_k = expert_indices_TK.shape
    counts = torch.bincount(expert_indices_TK.reshape(-1), minlength=n_experts).float()
    return counts * (n_experts / (top_k * n_tokens))


def expert_balance_loss(probs_TE: torch.Tensor, expert_indices_TK: torch.Tensor, alpha: float) -> torch.Tensor:
    """L_ExpBal = alpha_1 * sum_i f_i P_i with P_i = mean_t s_{i,t}  (DeepSeekMoE Eq. 12-14)."""
    f_E = expert_load_fraction(expert_indices_TK, probs_TE.shape[-1])
    return alpha * (f_E * probs_TE.mean(0)).sum()


def sequence_balance_loss(probs_TE: torch.Tensor, expert_indices_TK: torch.Tensor, alpha: float,
                          batch_size: int) -> torch.Tensor:
    """The expert-level loss computed per sequence, then averaged (DeepSeek-V3 Eq. 17-20)."""
    n_tokens, top_k = expert_indices_TK.shape
    n_experts = probs_TE.shape[-1]
    seq_len = n_tokens // batch_size
    chosen_BS = expert_indices_TK.reshape(batch_size, seq_len * top_k)
    counts_BE = torch.zeros(batch_size, n_experts, device=probs_TE.device)
    counts_BE.scatter_add_(1, chosen_BS, torch.ones_like(chosen_BS, dtype=counts_BE.dtype))
    f_BE = counts_BE * (n_experts / (top_k * seq_len))
    p_BE = probs_TE.reshape(batch_size, seq_len, n_experts).mean(1)
    return alpha * (f_BE * p_BE).sum(1).mean()


def device_balance_loss(probs_TE: torch.Tensor, expert_indices_TK: torch.Tensor, alpha: float,
                        n_devices: int) -> torch.Tensor:
    """L_DevBal = alpha_2 * sum_d f'_d P'_d, f'_d = mean_{i in E_d} f_i, P'_d = sum_{i in E_d} P_i (Eq. 15-17)."""
    n_experts = probs_TE.shape[-1]
    f_DG = expert_load_fraction(expert_indices_TK, n_experts).reshape(n_devices, -1)
    p_DG = probs_TE.mean(0).reshape(n_devices, -1)
    return alpha * (f_DG.mean(1) * p_DG.sum(1)).sum()


def z_loss(logits_TE: torch.Tensor, coef: float) -> torch.Tensor:
    """coef * mean_t logsumexp(logits_t)^2  (ST-MoE, Zoph et al. 2022, Eq. 5)."""
    return coef * torch.logsumexp(logits_TE, dim=-1).square().mean()


def balance_losses(config: ModelConfig, probs_TE: torch.Tensor, expert_indices_TK: torch.Tensor,
                   logits_TE: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
    """The enabled aux losses of one MoE layer, keyed by name."""
    losses: dict[str, torch.Tensor] = {}
    if config.aux_loss_alpha > 0:
        if config.seq_aux:
            losses["seq_balance"] = sequence_balance_loss(probs_TE, expert_indices_TK, config.aux_loss_alpha, batch_size)
        else:
            losses["expert_balance"] = expert_balance_loss(probs_TE, expert_indices_TK, config.aux_loss_alpha)
    if config.device_balance_alpha > 0:
        losses["device_balance"] = device_balance_loss(probs_TE, expert_indices_TK, config.device_balance_alpha,
                                                       config.n_devices)
    if config.z_loss_coef > 0:
        losses["z_loss"] = z_loss(logits_TE, config.z_loss_coef)
    return losses
