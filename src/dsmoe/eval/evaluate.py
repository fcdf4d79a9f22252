"""Validation loss, perplexity and bits per byte (tokenizer-independent), overall and per domain."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dsmoe.data.batches import val_batches
from dsmoe.runtime.devices import to_device


@dataclass
class EvalResult:
    loss: float  # mean next-token cross-entropy in nats
    perplexity: float
    bits_per_byte: float  # total NLL in bits / UTF-8 bytes of the predicted tokens
    tokens: int
    n_bytes: int
    per_domain: dict[str, "EvalResult"] = field(default_factory=dict)

    def summary(self) -> str:
        """One line; the tokens are those predicted: a text's first token (each window's, when the text is longer than
        one) is only context, so a text of N tokens scores fewer than N."""
        return (f"loss {self.loss:.4f}  ppl {self.perplexity:.2f}  bits/byte {self.bits_per_byte:.4f}  "
                f"({self.tokens:,} tokens predicted)")


@torch.no_grad()
def evaluate_tokens(model: nn.Module, tokens: np.ndarray, seq_len: int, batch_size: int,
                    token_bytes: np.ndarray, max_batches: int | None = None) -> EvalResult:
    """Score `tokens` in windows of seq_len with the model in eval mode (restores its mode after)."""
    was_training = model.training
    model.eval()
    nll, n_tokens, n_bytes = 0.0, 0, 0
    device = next(model.parameters()).device
    for inputs, targets in val_batches(tokens, seq_len, batch_size, max_batches):
        logits = model(to_device(inputs, device)).logits
        nll += F.cross_entropy(logits.float().flatten(0, 1), to_device(targets, device).flatten(),
                               reduction="sum").item()
        n_tokens += targets.numel()
        n_bytes += int(token_bytes[targets.numpy()].sum())
    model.train(was_training)
    if n_tokens == 0:
        raise ValueError(f"evaluation split has {len(tokens)} tokens; needs at least seq_len + 1 = {seq_len + 1}")
    if not math.isfinite(nll):
        raise ValueError(f"evaluation loss is {nll / n_tokens}: the model gives non-finite logits (diverged or "
                         "damaged weights); a loss must be a finite number")
    return result_from_totals(nll, n_tokens, n_bytes)


def result_from_totals(nll: float, n_tokens: int, n_bytes: int, per_domain: dict | None = None) -> EvalResult:
    loss = nll / n_tokens
    return EvalResult(loss, math.exp(min(loss, 50.0)), nll / math.log(2) / max(n_bytes, 1), n_tokens, n_bytes,
                      per_domain or {})


def evaluate_domains(model: nn.Module, domain_tokens: dict[str, np.ndarray], seq_len: int, batch_size: int,
                     token_bytes: np.ndarray, max_batches: int | None = None) -> EvalResult:
    """Evaluate each domain's tokens separately, and all of them pooled (token-weighted)."""
    per_domain = {name: evaluate_tokens(model, tokens, seq_len, batch_size, token_bytes, max_batches)
                  for name, tokens in domain_tokens.items() if len(tokens) > seq_len}
    if not per_domain:
        raise ValueError(f"no validation domain has more than seq_len={seq_len} tokens")
    nll = sum(r.loss * r.tokens for r in per_domain.values())
    return result_from_totals(nll, sum(r.tokens for r in per_domain.values()),
                              sum(r.n_bytes for r in per_domain.values()), per_domain if len(per_domain) > 1 else None)
