"""Log-probabilities of chosen tokens and their likeliest alternatives, from the model's raw logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TokenLogprob:
    """token_id's log-probability, and the `top` likeliest tokens as (token id, log-probability), likeliest first."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


def token_logprobs(logits_LV: torch.Tensor, token_ids: list[int], n_tops: list[int]) -> list[TokenLogprob]:
    """The log_softmax of each row of logits (in float32) at token_ids[row], with its n_tops[row] likeliest tokens
    (one top-k for all rows)."""
    logprobs_LV = logits_LV.float().log_softmax(dim=-1)
    token_ids_L1 = torch.tensor(token_ids, dtype=torch.long, device=logits_LV.device).unsqueeze(-1)
    chosen_L = logprobs_LV.gather(-1, token_ids_L1).squeeze(-1)
    top_values_LX, top_ids_LX = logprobs_LV.topk(max(n_tops, default=0), dim=-1)  # X: the most alternatives asked
    return [TokenLogprob(token, logprob, tuple(zip(ids[:n_top], values[:n_top])))
            for token, logprob, ids, values, n_top in zip(token_ids, chosen_L.tolist(), top_ids_LX.tolist(),
                                                          top_values_LX.tolist(), n_tops)]


def prompt_logprobs(logits_LV: torch.Tensor, prompt_ids: list[int], n_top: int) -> list[TokenLogprob | None]:
    """Each prompt token scored by the logits of the position before it; the first token has no score (None)."""
    return [None, *token_logprobs(logits_LV[:-1], prompt_ids[1:], [n_top] * (len(prompt_ids) - 1))]
