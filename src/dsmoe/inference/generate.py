"""Autoregressive generation with the KV cache: a batch of left-padded prompts decoded together, each row
stopping at its own end-of-text token, streaming each new token to a callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dsmoe.inference.compiled import compiled_decode_step
from dsmoe.inference.sampling import check_sampling, sample_next
from dsmoe.model.transformer import DeepSeekMoEForCausalLM

PAD_TOKEN_ID = 0  # what fills a short prompt's left padding; never attended to, so any valid id does


@dataclass
class SamplingConfig:
    """How to pick new tokens.

    max_new_tokens: the most tokens generated per prompt. Default 200.
    temperature: softmax temperature; 0 is greedy (argmax). Default 0.8.
    top_k, top_p: keep the k likeliest tokens / the smallest set with probability mass top_p; None keeps all.
    seed: every prompt draws from its own generator seeded with `seed`, so a prompt's completion does not
        depend on the other prompts of its batch, its place in it, or the batch size: generating it alone
        gives the same tokens, up to float rounding of the logits (padded and unpadded runs differ by
        ~1e-7, which can flip a draw only when it lands on a probability boundary). Default 0.
    eos_token_id: a prompt stops after generating this token (kept in its output); None: only
        max_new_tokens stops. Default None.
    """

    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int | None = 50
    top_p: float | None = None
    seed: int = 0
    eos_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens} must be >= 1")
        check_sampling(self.temperature, self.top_k, self.top_p)


def left_pad(prompts: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids [B, L], real [B, L]): each prompt right-aligned in a row as long as the longest one."""
    length = max(len(prompt) for prompt in prompts)
    input_ids_BL = torch.full((len(prompts), length), PAD_TOKEN_ID, dtype=torch.long, device=device)
    real_BL = torch.zeros(len(prompts), length, dtype=torch.bool, device=device)
    for row, prompt in enumerate(prompts):
        input_ids_BL[row, length - len(prompt):] = torch.tensor(prompt, dtype=torch.long, device=device)
        real_BL[row, length - len(prompt):] = True
    return input_ids_BL, real_BL


def room_for_prompt(sampling: SamplingConfig, max_seq_len: int) -> int:
    """The longest prompt that leaves room for max_new_tokens within max_seq_len; an error if there is none."""
    max_prompt = max_seq_len - sampling.max_new_tokens
    if max_prompt < 1:
        raise ValueError(f"max_new_tokens={sampling.max_new_tokens} leaves no room for a prompt within "
                         f"max_seq_len={max_seq_len}")
    return max_prompt


def fit_prompts(prompts: list[list[int]], sampling: SamplingConfig, max_seq_len: int) -> list[list[int]]:
    """Cut each prompt from the left so that prompt + new tokens fit in max_seq_len (an empty one becomes [0])."""
    max_prompt = room_for_prompt(sampling, max_seq_len)
    if not prompts:
        raise ValueError("no prompts to generate from (give at least one)")
    return [prompt[-max_prompt:] or [PAD_TOKEN_ID] for prompt in prompts]


def sample_rows(logits_BV: torch.Tensor, rows: list[int], sampling: SamplingConfig,
                generators: list[torch.Generator]) -> list[int]:
    """The next token of each of `rows`: greedy in one argmax, else each row drawn with its own generator."""
    row_logits_BV = logits_BV[rows]
    if sampling.temperature == 0:
        return row_logits_BV.argmax(dim=-1).tolist()
    draws = [sample_next(row_logits_BV[i:i + 1], sampling.temperature, sampling.top_k, sampling.top_p, generators[row])
             for i, row in enumerate(rows)]
    return torch.cat(draws).tolist()


def running_mask(running: list[int], batch: int, device: torch.device) -> torch.Tensor | None:
    """[B, 1]: True for the rows still generating, False for those that stopped; None while none has."""
    if len(running) == batch:
        return None
    mask_B1 = torch.zeros(batch, 1, dtype=torch.bool, device=device)
    mask_B1[running] = True
    return mask_B1


@torch.no_grad()
def generate_batch(model: DeepSeekMoEForCausalLM, prompts: list[list[int]], sampling: SamplingConfig,
                   on_token: Callable[[int, int], None] | None = None, compile_decode: bool = False
                   ) -> list[list[int]]:
    """Prefill the left-padded prompts into one KV cache, then decode all rows one token at a time.

    A row that produced sampling.eos_token_id stops: its later inputs are marked as pads, so it neither
    samples nor routes tokens; decoding ends when every row has stopped or made max_new_tokens.
    on_token(row, token) sees each new token as it comes. Returns each prompt's new tokens.
    While no row is padded (one prompt, or prompts of one length, none stopped) the model runs its plain
    causal path, without a mask.
    compile_decode: run the one-token steps through torch.compile (dsmoe.inference.compiled); the first call
    for a model pays the compilation, and the tokens are those of eager decoding up to float rounding.
    """
    model.eval()
    decode_step = compiled_decode_step(model) if compile_decode else model
    prompts = fit_prompts(prompts, sampling, model.config.max_seq_len)
    device = model.lm_head.weight.device
    input_ids_BL, real_BL = left_pad(prompts, device)
    attention_mask_BL = real_BL if len({len(prompt) for prompt in prompts}) > 1 else None
    generators = [torch.Generator(device=device).manual_seed(sampling.seed) for _ in prompts]
    cache = model.new_cache(max_len=input_ids_BL.shape[1] + sampling.max_new_tokens)  # sized to the request, not max_seq_len
    new_tokens: list[list[int]] = [[] for _ in prompts]
    running = list(range(len(prompts)))
    for step in range(sampling.max_new_tokens):
        forward = model if step == 0 else decode_step  # the prefill stays eager
        logits_BV = forward(input_ids_BL, cache=cache, attention_mask_BL=attention_mask_BL).logits[:, -1]
        tokens = sample_rows(logits_BV, running, sampling, generators)
        for row, token in zip(running, tokens):
            new_tokens[row].append(token)
            if on_token is not None:
                on_token(row, token)
        input_ids_BL = torch.full((len(prompts), 1), PAD_TOKEN_ID, dtype=torch.long, device=device)
        input_ids_BL[running, 0] = torch.tensor(tokens, dtype=torch.long, device=device)
        running = [row for row in running if new_tokens[row][-1] != sampling.eos_token_id]
        if not running:
            break
        attention_mask_BL = running_mask(running, len(prompts), device)
    return new_tokens


def generate(model: DeepSeekMoEForCausalLM, prompt_ids: list[int], sampling: SamplingConfig,
             on_token: Callable[[int], None] | None = None, compile_decode: bool = False) -> list[int]:
    """One prompt (cut from the left to fit max_seq_len with the new tokens): its new tokens, each streamed to
    on_token as it comes."""
    stream = None if on_token is None else (lambda row, token: on_token(token))
    return generate_batch(model, [prompt_ids], sampling, stream, compile_decode)[0]
