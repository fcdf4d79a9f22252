"""Auxiliary balance losses, exactly as DeepSeekMoE (Sec. 3.3), DeepSeek-V2 (Sec. 2.2.3) and DeepSeek-V3
(Sec. 2.1.2) define them.

Notation: N' routed experts, K' experts chosen per token, T tokens, s_{i,t} the router's affinity of
token t for expert i. Under perfectly uniform routing the expert-level loss equals alpha_1 exactly.
transformers' `load_balancing_loss_func` (Mixtral, Qwen-MoE, OLMoE) is scaled differently: it
averages the one-hot top-k mask over tokens only, so it returns K' * sum_i f_i P_i (K' under uniform
routing, not 1), and its coefficient is not interchangeable with alpha_1.

The counted choices are every chosen expert for the token-choice routers, and only each token's first choice
for the capacity routers (GShard Algorithm 1's ce, Switch Eq. 5's f_i). The T of each loss is a scope's tokens:
the micro-batch's, or each sequence's (balance_scope="sequence"), the losses then averaged over the sequences.
DeepSeek-V2 Sec. 2.2.3 defines T as "the number of tokens in a sequence" for its expert-level, device-level and
communication losses alike, so "sequence" makes all three per sequence. The sequence-wise loss counts the experts
each token chose (after any bias and group limit), as DeepSeek's code counts its topk_idx; seq_balance_count=
"unbiased_topk" counts DeepSeek-V3 Eq. 18 as written instead, the top-K' of the unbiased affinities s_{i,t} over
all experts. balance_scope="global_batch" gives the expert-level loss the global batch's counts, when a counting
pre-pass gave the router them (Qiu et al. 2025, dsmoe.routers.global_balance); that paper defines only that loss
over the global batch, so the device-level and communication losses keep the micro-batch's.

Each loss takes its tokens as [B, L, ...], B scopes of L tokens each, and is the mean of the scopes' losses;
[L, ...] without B is one scope.
"""

from __future__ import annotations

import torch

from dsmoe.config import ModelConfig


def choice_counts(expert_indices_BLK: torch.Tensor, n_experts: int) -> torch.Tensor:
    """sum_t 1(token t chooses expert i) per scope, [B, N'] float (the counts behind f_i); [N'] for [L, K]."""
    chosen_BX = expert_indices_BLK.flatten(-2)  # X = L * K: a scope's choices
    counts_BE = torch.zeros(*chosen_BX.shape[:-1], n_experts, device=chosen_BX.device)
    return counts_BE.scatter_add_(-1, chosen_BX, torch.ones(chosen_BX.shape, device=chosen_BX.device))


def scoped(tokens_TX: torch.Tensor, n_scopes: int) -> torch.Tensor:
    """[T, X] -> [B, L, X]: the flattened batch's tokens as n_scopes consecutive scopes (its sequences, or 1)."""
    return tokens_TX.unflatten(0, (n_scopes, -1))


def expert_load_fraction(counts_BE: torch.Tensor) -> torch.Tensor:
    """f_i = N' / (K' T) * sum_t 1(token t chooses expert i)  (DeepSeekMoE Eq. 13); sum_i counts_i = K' T."""
    return counts_BE * (counts_BE.shape[-1] / counts_BE.sum(dim=-1, keepdim=True))


def expert_balance_loss(probs_BLE: torch.Tensor, counts_BE: torch.Tensor, alpha: float) -> torch.Tensor:
    """L_ExpBal = alpha_1 * sum_i f_i P_i with P_i = mean_t s_{i,t}  (DeepSeekMoE Eq. 12-14; per sequence,
    averaged: DeepSeek-V3 Eq. 17-20)."""
    return alpha * (expert_load_fraction(counts_BE) * probs_BLE.mean(dim=-2)).sum(dim=-1).mean()


def device_balance_loss(probs_BLE: torch.Tensor, counts_BE: torch.Tensor, alpha: float,
                        n_devices: int) -> torch.Tensor:
    """L_DevBal = alpha_2 * sum_d f'_d P'_d, f'_d = mean_{i in E_d} f_i, P'_d = sum_{i in E_d} P_i (Eq. 15-17)."""
    f_BPX = expert_load_fraction(counts_BE).unflatten(-1, (n_devices, -1))  # X = E / P: the experts on one device
    p_BPX = probs_BLE.mean(dim=-2).unflatten(-1, (n_devices, -1))
    return alpha * (f_BPX.mean(dim=-1) * p_BPX.sum(dim=-1)).sum(dim=-1).mean()


def communication_balance_loss(probs_BLE: torch.Tensor, expert_indices_BLK: torch.Tensor, alpha: float,
                               n_devices: int, device_limit: int) -> torch.Tensor:
    """L_CommBal = alpha_3 * sum_d f''_d P''_d, f''_d = D / (M T) * sum_t 1(token t is sent to device d),
    P''_d = sum_{j in E_d} P_j  (DeepSeek-V2 Sec. 2.2.3); a token sent to d counts once however many of d's
    experts it chose."""
    n_tokens, n_experts = probs_BLE.shape[-2:]
    device_BLK = expert_indices_BLK // (n_experts // n_devices)
    sent_BLP = torch.zeros(*device_BLK.shape[:-1], n_devices, device=probs_BLE.device).scatter_(-1, device_BLK, 1.0)
    f_BP = sent_BLP.sum(dim=-2) * (n_devices / (device_limit * n_tokens))
    p_BP = probs_BLE.mean(dim=-2).unflatten(-1, (n_devices, -1)).sum(dim=-1)
    return alpha * (f_BP * p_BP).sum(dim=-1).mean()


def z_loss(logits_TE: torch.Tensor, coef: float) -> torch.Tensor:
    """coef * mean_t logsumexp(logits_t)^2  (ST-MoE, Zoph et al. 2022, Eq. 5)."""
    return coef * torch.logsumexp(logits_TE, dim=-1).square().mean()


def balance_losses(config: ModelConfig, probs_TE: torch.Tensor, counted_TK: torch.Tensor, counts_E: torch.Tensor,
                   logits_TE: torch.Tensor, batch_size: int, global_counts_E: torch.Tensor | None,
                   expert_level: bool = True) -> dict[str, torch.Tensor]:
    """The enabled aux losses of one MoE layer, keyed by name. `counted_TK`: the choices f_i counts, and
    `counts_E` their choice_counts; `global_counts_E`: the global batch's, when a pre-pass gave them;
    `expert_level=False`: the router has its own loss in its place (noisy_topk's importance and load) or none."""
    per_sequence = config.balance_scope == "sequence"
    probs_BLE = scoped(probs_TE, batch_size if per_sequence else 1)
    counted_BLK = scoped(counted_TK, probs_BLE.shape[0])
    counts_BE = choice_counts(counted_BLK, config.n_routed_experts) if per_sequence else counts_E
    losses: dict[str, torch.Tensor] = {}
    if config.aux_loss_alpha > 0 and expert_level:
        if per_sequence and config.seq_balance_count == "unbiased_topk":  # DeepSeek-V3 Eq. 18 as written
            expert_counts_BE = choice_counts(probs_BLE.topk(counted_TK.shape[1], dim=-1).indices,
                                             config.n_routed_experts)
        else:
            expert_counts_BE = counts_BE if global_counts_E is None else global_counts_E
        name = "seq_balance" if per_sequence else "expert_balance"
        losses[name] = expert_balance_loss(probs_BLE, expert_counts_BE, config.aux_loss_alpha)
    if config.device_balance_alpha > 0:
        losses["device_balance"] = device_balance_loss(probs_BLE, counts_BE, config.device_balance_alpha,
                                                       config.n_devices)
    if config.comm_balance_alpha > 0:
        losses["comm_balance"] = communication_balance_loss(probs_BLE, counted_BLK, config.comm_balance_alpha,
                                                            config.n_devices, config.topk_group)
    if config.z_loss_coef > 0:
        losses["z_loss"] = z_loss(logits_TE, config.z_loss_coef)
    return losses
