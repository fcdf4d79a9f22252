"""The one-token decoding step under torch.compile: one graph for every cache length, so decoding runs without
the per-op Python overhead that bounds small-batch decoding in eager mode.

The whole forward (attention over the cache, routers, the experts, the LM head) is captured with fullgraph=True;
the cache length is a symbolic integer (dynamic=True), so the graph compiled at the first decoding step serves
every later one, whatever the length; the batch size is static (one graph per batch size). Prefill stays eager:
prompt lengths vary, and it runs once per request.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch

from dsmoe.model.kv_cache import KVCache
from dsmoe.model.output import ModelOutput
from dsmoe.model.transformer import DeepSeekMoEForCausalLM

_COMPILED_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_decode_step(model: DeepSeekMoEForCausalLM) -> Callable[..., ModelOutput]:
    """model's forward compiled for decoding, called like model(input_ids, cache=..., attention_mask_BL=...).

    Compiled once per model and batch size (the first call traces, about 10-40 s on a CPU) and kept for the model's
    lifetime; the compiled function takes the model as an argument, so it keeps no reference that would hold the
    model alive.
    """
    step = _COMPILED_STEPS.get(model)
    if step is None:
        step = _COMPILED_STEPS[model] = torch.compile(type(model).forward, fullgraph=True, dynamic=True)

    def decode(input_ids: torch.Tensor, cache: KVCache, attention_mask_BL: torch.Tensor | None = None) -> ModelOutput:
        mark_batch_static(input_ids, attention_mask_BL, cache)
        return step(model, input_ids, cache=cache, attention_mask_BL=attention_mask_BL)
    return decode


def mark_batch_static(input_ids: torch.Tensor, attention_mask_BL: torch.Tensor | None, cache: KVCache) -> None:
    """Only the cache length is dynamic: with a static batch, the count of real tokens in a padded batch has a
    known bound, so the few-pairs expert path (dsmoe.kernels.pairwise) applies to padded steps too."""
    tensors = [input_ids, attention_mask_BL, cache.real_BM, *cache.keys, *cache.values]
    for tensor in tensors:
        if tensor is not None:
            torch._dynamo.mark_static(tensor, 0)
