"""Greedy self-speculative decoding: the MTP modules draft the next tokens, the main model checks them all in
one cached forward (DeepSeek-V3 Sec. 5.4.3 uses its MTP module this way). The output is exactly that of
greedy decoding; what changes is how many tokens each main-model forward yields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dsmoe.inference.generate import SamplingConfig, fit_prompts
from dsmoe.model.kv_cache import KVCache
from dsmoe.model.transformer import DeepSeekMoEForCausalLM


@dataclass
class SpeculativeResult:
    """tokens: the new tokens (equal to greedy decoding's); proposed / accepted: drafts the MTP modules made /
    that the main model agreed with; forwards: main-model forwards, the prompt's prefill included."""

    tokens: list[int]
    proposed: int = 0
    accepted: int = 0
    forwards: int = 1

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def tokens_per_forward(self) -> float:
        return len(self.tokens) / self.forwards

    def summary(self) -> str:
        return (f"speculative: {self.accepted}/{self.proposed} drafts accepted ({self.acceptance_rate:.0%}), "
                f"{self.tokens_per_forward:.1f} tokens per forward")


class MTPDrafter:
    """Runs the D MTP modules incrementally, each with its own KV cache, to draft the D tokens after the last
    known one: depth k at position i reads depth k-1's output there (depth 1: the main model's hidden_BLD)
    and the embedding of t_{i+k}, exactly as in training (dsmoe.model.mtp), and predicts t_{i+k+1}.

    At the last position, depth k >= 2 reads tokens that are themselves drafts, so the caches keep only the
    positions whose inputs are all known tokens (i <= m - D when t_m is the last known token); the D - 1
    positions after that are recomputed on the next draft, from the main hidden states kept in pending_1LD.
    """

    def __init__(self, model: DeepSeekMoEForCausalLM, max_len: int):
        self.model = model
        self.depths = len(model.mtp.layers)
        # each MTP block attends with the main model's last layer index, so its cache has that many slots
        self.caches = [KVCache(model.config.n_layers, max_len) for _ in range(self.depths)]
        self.pending_1LD: torch.Tensor | None = None  # main hidden states of positions [caches' length, m)

    def extend(self, hidden_1LD: torch.Tensor) -> None:
        """Add the main model's hidden states of the next positions."""
        pending = [self.pending_1LD] if self.pending_1LD is not None else []
        self.pending_1LD = torch.cat([*pending, hidden_1LD], dim=1)

    def draft(self, sequence: list[int], n_drafts: int) -> list[int]:
        """The next n_drafts <= D tokens after `sequence` (prompt and generated tokens, t_0..t_m), whose main
        hidden states of positions 0..m-1 have been given to `extend`."""
        start, last = self.caches[0].length, len(sequence) - 1
        held = 0 if self.pending_1LD is None else self.pending_1LD.shape[1]
        if held != last - start:
            raise ValueError(f"the drafter holds hidden states of positions [0, {start + held}) but a sequence of "
                             f"{len(sequence)} tokens needs [0, {last}) (call extend after each main forward)")
        cos_LU, sin_LU = self.model.rope_tables(start, last - start, None, self.pending_1LD.device)
        previous_1LD, drafts = self.pending_1LD, []
        for depth, (layer, cache) in enumerate(zip(self.model.mtp.layers, self.caches), start=1):
            next_ids_1L = torch.tensor([(sequence + drafts)[start + depth:last + depth]], device=previous_1LD.device)
            previous_1LD, _ = layer(previous_1LD, self.model.embed_tokens(next_ids_1L), cos_LU, sin_LU, next_ids_1L,
                                    cache)
            cache.length += next_ids_1L.shape[1]
            drafts.append(int(self.model.lm_head(previous_1LD[0, -1]).argmax()))
        self.commit(start, last)
        return drafts[:n_drafts]

    def commit(self, start: int, last: int) -> None:
        """Keep in the caches the positions i <= last - D, whose inputs are known tokens at every depth."""
        committed = max(start, last - self.depths + 1)
        for cache in self.caches:
            cache.rollback(committed)
        self.pending_1LD = self.pending_1LD[:, committed - start:]


def check_speculative(model: DeepSeekMoEForCausalLM, sampling: SamplingConfig) -> None:
    if model.mtp is None:
        raise ValueError(f"speculative decoding drafts with the MTP modules; this model has "
                         f"n_mtp_modules={model.config.n_mtp_modules} (needs >= 1)")
    if sampling.temperature != 0:
        raise ValueError(f"speculative decoding is greedy only: temperature={sampling.temperature} (must be 0)")


def accepted_prefix(drafts: list[int], choices: list[int]) -> int:
    """How many leading drafts equal the main model's greedy choices at the same positions."""
    n_accepted = 0
    while n_accepted < len(drafts) and drafts[n_accepted] == choices[n_accepted]:
        n_accepted += 1
    return n_accepted


@torch.no_grad()
def generate_speculative(model: DeepSeekMoEForCausalLM, prompt_ids: list[int], sampling: SamplingConfig,
                         on_token: Callable[[int], None] | None = None) -> SpeculativeResult:
    """Greedy decoding of one prompt (cut from the left like `generate`) with MTP drafts checked by the main
    model: each forward feeds [last token, drafts...], keeps the drafts up to the first one the main model
    would not have chosen, adds the main model's own next token, and rolls the KV cache back to the kept
    tokens. Stops after sampling.eos_token_id or max_new_tokens; each new token is streamed to on_token."""
    check_speculative(model, sampling)
    model.eval()
    prompt = fit_prompts([prompt_ids], sampling, model.config.max_seq_len)[0]
    device = model.lm_head.weight.device
    cache = model.new_cache(max_len=len(prompt) + sampling.max_new_tokens)
    drafter = MTPDrafter(model, cache.max_len)
    out = model(torch.tensor([prompt], device=device), cache=cache)
    drafter.extend(out.hidden_BLD)
    result = SpeculativeResult(tokens=[])
    new_tokens = [int(out.logits[0, -1].argmax())]
    while take_tokens(result, new_tokens, sampling, on_token):
        n_drafts = min(drafter.depths, sampling.max_new_tokens - len(result.tokens) - 1)
        drafts = drafter.draft(prompt + result.tokens, n_drafts) if n_drafts else []
        out = model(torch.tensor([result.tokens[-1:] + drafts], device=device), cache=cache)
        choices = out.logits[0].argmax(dim=-1).tolist()  # choices[j]: the main model's token after input j
        n_accepted = accepted_prefix(drafts, choices)
        cache.rollback(cache.length - len(drafts) + n_accepted)
        drafter.extend(out.hidden_BLD[:, :n_accepted + 1])
        result.proposed, result.accepted, result.forwards = (result.proposed + len(drafts),
                                                             result.accepted + n_accepted, result.forwards + 1)
        new_tokens = drafts[:n_accepted] + [choices[n_accepted]]
    return result


def take_tokens(result: SpeculativeResult, new_tokens: list[int], sampling: SamplingConfig,
                on_token: Callable[[int], None] | None) -> bool:
    """Append new_tokens to the result up to and including an end-of-text token; False once decoding is done."""
    for token in new_tokens:
        result.tokens.append(token)
        if on_token is not None:
            on_token(token)
        if token == sampling.eos_token_id or len(result.tokens) == sampling.max_new_tokens:
            return False
    return True
