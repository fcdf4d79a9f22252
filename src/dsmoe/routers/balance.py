"""Auxiliary balance losses, exactly as DeepSeekMoE (Sec. 3.3), DeepSeek-V2 (Sec. 2.2.3) and DeepSeek-V3
(Sec. 2.1.2) define them.

Notation: N' routed experts, K' experts chosen per token, T tokens, s_{i,t} the router's affinity of
token t for expert i. Under perfectly uniform routing the expert-level loss equals alpha_1 exactly.
transformers' `load_balancing_loss_func` (Mixtral, Qwen-MoE, OLMoE) is scaled differently: it
averages the one-hot top-k mask over tokens only, so it returns K' * sum_i f_i P_i (K' under uniform
routing, not 1), and its coefficient is not interchangeable with alpha_1.

The counted choices are every chosen expert for the token-choice routers, and only each token's first choice
for the capacity routers (GShard Algorithm 1's ce, Switch Eq. 5's f_i). The expert-level loss's f_i comes from
this forward's counts, each sequence's (balance_scope="sequence"), or the global batch's counts when a
counting pre-pass gave the router them (balance_scope="global_batch", dsmoe.routers.global_balance).
"""

from __future__ import annotations

import torch

from dsmoe.config import ModelConfig


def choice_counts(expert_indices_TK: torch.Tensor, n_experts: int) -> torch.Tensor:
    """sum_t 1(token t chooses expert i), [N'] float (the counts behind f_i)."""
    chosen_S = expert_indices_TK.reshape(-1)
    counts_E = torch.zeros(n_experts, device=chosen_S.device)
    return counts_E.scatter_add_(0, chosen_S, torch.ones(chosen_S.shape, device=chosen_S.device))


def expert_load_fraction(counts_E: torch.Tensor) -> torch.Tensor:
    """f_i = N' / (K' T) * sum_t 1(token t chooses expert i)  (DeepSeekMoE Eq. 13); sum_i counts_i = K' T."""
    return counts_E * (counts_E.numel() / counts_E.sum())


def expert_balance_loss(probs_TE: torch.Tensor, counts_E: torch.Tensor, alpha: float) -> torch.Tensor:
    """L_ExpBal = alpha_1 * sum_i f_i P_i with P_i = mean_t s_{i,t}  (DeepSeekMoE Eq. 12-14)."""
    return alpha * (expert_load_fraction(counts_E) * probs_TE.mean(0)).sum()


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


def device_balance_loss(probs_TE: torch.Tensor, counts_E: torch.Tensor, alpha: float,
                        n_devices: int) -> torch.Tensor:
    """L_DevBal = alpha_2 * sum_d f'_d P'_d, f'_d = mean_{i in E_d} f_i, P'_d = sum_{i in E_d} P_i (Eq. 15-17)."""
    f_PX = expert_load_fraction(counts_E).reshape(n_devices, -1)  # X = E / P: the experts on one device
    p_PX = probs_TE.mean(0).reshape(n_devices, -1)
    return alpha * (f_PX.mean(1) * p_PX.sum(1)).sum()


def communication_balance_loss(probs_TE: torch.Tensor, expert_indices_TK: torch.Tensor, alpha: float,
                               n_devices: int, device_limit: int) -> torch.Tensor:
    """L_CommBal = alpha_3 * sum_d f''_d P''_d, f''_d = D / (M T) * sum_t 1(token t is sent to device d),
    P''_d = sum_{j in E_d} P_j  (DeepSeek-V2 Sec. 2.2.3); a token sent to d counts once however many of d's
    experts it chose."""
    n_tokens, n_experts = probs_TE.shape
    device_TK = expert_indices_TK // (n_experts // n_devices)
    sent_TP = torch.zeros(n_tokens, n_devices, device=probs_TE.device).scatter_(1, device_TK, 1.0)
    f_P = sent_TP.sum(0) * (n_devices / (device_limit * n_tokens))
    p_P = probs_TE.mean(0).reshape(n_devices, -1).sum(1)
    return alpha * (f_P * p_P).sum()


def z_loss(logits_TE: torch.Tensor, coef: float) -> torch.Tensor:
    """coef * mean_t logsumexp(logits_t)^2  (ST-MoE, Zoph et al. 2022, Eq. 5)."""
    return coef * torch.logsumexp(logits_TE, dim=-1).square().mean()


def balance_losses(config: ModelConfig, probs_TE: torch.Tensor, counted_TK: torch.Tensor, counts_E: torch.Tensor,
                   logits_TE: torch.Tensor, batch_size: int, global_counts_E: torch.Tensor | None,
                   expert_level: bool = True) -> dict[str, torch.Tensor]:
    """The enabled aux losses of one MoE layer, keyed by name. `counted_TK`: the choices f_i counts, and
    `counts_E` their choice_counts; `global_counts_E`: the global batch's, when a pre-pass gave them;
    `expert_level=False`: the router has its own loss in its place (noisy_topk's importance and load)."""
    losses: dict[str, torch.Tensor] = {}
    if config.aux_loss_alpha > 0 and expert_level:
        if config.balance_scope == "sequence":
            losses["seq_balance"] = sequence_balance_loss(probs_TE, counted_TK, config.aux_loss_alpha, batch_size)
        else:
            scope_counts_E = counts_E if global_counts_E is None else global_counts_E
            losses["expert_balance"] = expert_balance_loss(probs_TE, scope_counts_E, config.aux_loss_alpha)
    if config.device_balance_alpha > 0:
        losses["device_balance"] = device_balance_loss(probs_TE, counts_E, config.device_balance_alpha,
                                                       config.n_devices)
    if config.comm_balance_alpha > 0:
        losses["comm_balance"] = communication_balance_loss(probs_TE, counted_TK, config.comm_balance_alpha,
                                                            config.n_devices, config.topk_group)
    if config.z_loss_coef > 0:
        losses["z_loss"] = z_loss(logits_TE, config.z_loss_coef)
    return losses
