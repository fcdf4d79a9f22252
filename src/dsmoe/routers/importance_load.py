"""Noisy top-k gating's own balance losses (Shazeer et al. 2017, Sec. 4 and Appendix A).

Importance(X)_i = sum_{x in X} G(x)_i (Eq. 6) and L_importance = w_importance * CV(Importance(X))^2 (Eq. 7);
the smooth load estimator P(x, i) = Phi(((x W_g)_i - kth_excluding(H(x), k, i)) / Softplus((x W_noise)_i))
(Eq. 8-9), the probability that expert i stays in the top k under a new draw of its own noise only,
Load(X)_i = sum_x P(x, i) (Eq. 10) and L_load = w_load * CV(Load(X))^2 (Eq. 11). CV is std / mean with the
population variance over the experts, as tensor2tensor's `cv_squared` (the authors' code).
"""

from __future__ import annotations

import torch

from dsmoe.config import ModelConfig


def cv_squared(values_E: torch.Tensor) -> torch.Tensor:
    """CV(v)^2 = Var(v) / mean(v)^2, the variance over the experts (not the unbiased estimate)."""
    return values_E.var(unbiased=False) / values_E.mean().square()


def importance(gates_TE: torch.Tensor) -> torch.Tensor:
    """Importance(X)_i = sum_x G(x)_i  (Eq. 6)."""
    return gates_TE.sum(0)


def smooth_load(clean_TE: torch.Tensor, noisy_TE: torch.Tensor, noise_std_TE: torch.Tensor,
                chosen_TE: torch.Tensor, top_k: int) -> torch.Tensor:
    """Load(X)_i = sum_x Phi(((x W_g)_i - kth_excluding(H(x), k, i)) / noise_std_i)  (Eq. 8-10).

    Excluding i, the k-th greatest of H(x) is the (k+1)-th overall when i is among the chosen k, else the k-th.
    A disabled expert (logit -inf, Router.disable_experts) has P = 0, and one that no k others can outscore P = 1,
    without the 0 * inf of their gradients.
    """
    top_values_TK = noisy_TE.topk(top_k + 1, dim=-1).values
    kth_excluding_TE = torch.where(chosen_TE, top_values_TK[:, top_k:], top_values_TK[:, top_k - 1:top_k])
    margin_TE = clean_TE - kth_excluding_TE
    finite_TE = margin_TE.isfinite()
    in_top_k_TE = torch.special.ndtr(margin_TE.where(finite_TE, 0.0) / noise_std_TE)
    return in_top_k_TE.where(finite_TE, (margin_TE > 0).to(in_top_k_TE.dtype)).sum(0)


def importance_load_losses(config: ModelConfig, clean_TE: torch.Tensor, noisy_TE: torch.Tensor,
                           noise_std_TE: torch.Tensor, expert_indices_TK: torch.Tensor,
                           weights_TK: torch.Tensor) -> dict[str, torch.Tensor]:
    """The enabled ones of L_importance (Eq. 7) and L_load (Eq. 11), keyed "importance" and "load"."""
    losses: dict[str, torch.Tensor] = {}
    if config.importance_loss_weight > 0:
        gates_TE = torch.zeros_like(clean_TE).scatter(1, expert_indices_TK, weights_TK)
        losses["importance"] = config.importance_loss_weight * cv_squared(importance(gates_TE))
    if config.load_loss_weight > 0:
        chosen_TE = torch.zeros_like(clean_TE, dtype=torch.bool).scatter(1, expert_indices_TK, True)
        load_E = smooth_load(clean_TE, noisy_TE, noise_std_TE, chosen_TE, expert_indices_TK.shape[1])
        losses["load"] = config.load_loss_weight * cv_squared(load_E)
    return losses
