"""The one-token decoding step under torch.compile: one graph for every cache length, so decoding runs without
the per-op Python overhead that bounds small-batch decoding in eager mode.

The whole forward (attention over the cache, routers, the fused expert op, the LM head) is captured with
fullgraph=True; the cache length is a symbolic integer (dynamic=True), so the graph compiled at the first
decoding step serves every later one, whatever the length. Prefill stays eager: prompt lengths vary, and it runs
once per request.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch

from dsmoe.model.output import ModelOutput
from dsmoe.model.transformer import DeepSeekMoEForCausalLM

_COMPILED_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_decode_step(model: DeepSeekMoEForCausalLM) -> Callable[..., ModelOutput]:
    """model's forward compiled for decoding, called like model(input_ids, cache=..., attention_mask_BL=...).

    Compiled once per model (the first call traces, about 10-30 s on a CPU) and kept for its lifetime; the
    compiled function takes the model as an argument, so it keeps no reference that would hold the model alive.
    """
    step = _COMPILED_STEPS.get(model)
    if step is None:
        compiled_forward = torch.compile(type(model).forward, fullgraph=True, dynamic=True)
        step = _COMPILED_STEPS[model] = compiled_forward
    return lambda *args, **kwargs: step(model, *args, **kwargs)
