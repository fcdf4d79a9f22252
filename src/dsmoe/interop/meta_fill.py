"""Filling a dsmoe model built on the meta device, one checkpoint tensor at a time.

Only the model's skeleton exists until a tensor arrives; each is cast and put in place (stacked experts into
their slice of one [E, ...] tensor allocated on first use), so peak memory is the model plus one checkpoint tensor
(and a checkpoint's copy of a shared tensor, e.g. DeepSeek-V3's MTP embedding, until the shared one arrives). A
non-floating tensor (integers, bools: a quantized checkpoint's) where dsmoe has a float one is refused, naming it,
rather than cast into other numbers. At the end every parameter must have been filled exactly once and every
checkpoint tensor used, or the error names it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.interop.keys import Piece
from dsmoe.model import DeepSeekMoEForCausalLM
from dsmoe.model.rope import RotaryEmbedding
from dsmoe.model.yarn import YarnScaling
from dsmoe.routers import routers_of


def meta_model(config: ModelConfig) -> DeepSeekMoEForCausalLM:
    """The model's skeleton: every tensor on the meta device, nothing allocated or initialised."""
    with torch.device("meta"):
        return DeepSeekMoEForCausalLM(config)


def check_names(pieces: dict[str, Piece], available: Iterable[str], source: str) -> None:
    """Raise naming the first tensors the checkpoint lacks, or holds without a place in the model."""
    available = set(available)
    missing = sorted(name for name, piece in pieces.items() if name not in available and not piece.optional)
    extra = sorted(available - pieces.keys())
    if missing:
        raise ValueError(f"{source} lacks tensor(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
                         f"{len(missing)} missing")
    if extra:
        raise ValueError(f"{source} has tensor(s) {extra[:5]}{' ...' if len(extra) > 5 else ''} that the model "
                         f"has no place for; {len(extra)} unexpected")


class StreamingFill:
    """Puts Hugging Face tensors into a meta-device dsmoe model on `device`: put() each, then finish()."""

    def __init__(self, model: DeepSeekMoEForCausalLM, pieces: dict[str, Piece], dtype: torch.dtype,
                 device: torch.device = torch.device("cpu")):
        self.model, self.pieces, self.dtype, self.device = model, pieces, dtype, device
        state = model.state_dict(keep_vars=True)
        self.shapes = {name: tensor.shape for name, tensor in state.items()}
        self.floating = {name for name, tensor in state.items() if tensor.is_floating_point()}
        self.placed: set[str] = set()
        self.pending_copies: dict[str, list[tuple[str, torch.Tensor]]] = {}

    def put(self, hf_name: str, tensor: torch.Tensor) -> None:
        piece = self.pieces.get(hf_name)
        if piece is None:
            raise ValueError(f"checkpoint tensor {hf_name!r} has no place in the model")
        if hf_name in self.placed:
            raise ValueError(f"checkpoint tensor {hf_name!r} appears twice")
        expected = piece.shape(self.shapes[piece.name])
        if tuple(tensor.shape) != expected:
            raise ValueError(f"checkpoint tensor {hf_name!r} has shape {list(tensor.shape)}; the model expects "
                             f"{list(expected)} (for {piece.name})")
        if piece.name in self.floating and not tensor.is_floating_point():
            raise ValueError(f"checkpoint tensor {hf_name!r} has dtype {str(tensor.dtype).removeprefix('torch.')}; "
                             f"the model's {piece.name} is floating point (a quantized or damaged checkpoint? "
                             "dsmoe reads float weights only)")
        self.placed.add(hf_name)
        if piece.duplicate:
            self.pending_copies.setdefault(piece.name, []).append((hf_name, tensor))
        elif piece.expert is None:
            self.assign(piece.name, tensor)
        else:
            piece.take(self.stacked(piece.name)).copy_(tensor)
        if piece.name in self.pending_copies:
            self.check_copies(piece.name)

    def check_copies(self, name: str) -> None:
        """Once `name` is loaded, compare the checkpoint's copies of it (DeepSeek-V3's MTP embedding and head, a
        stored tied head) and drop them: dsmoe keeps one tensor, as DeepSeek-V3 Sec. 2.2 and tying prescribe."""
        module, attribute = self.owner(name)
        kept = getattr(module, attribute)
        if kept.is_meta:
            return
        for hf_name, tensor in self.pending_copies.pop(name):
            if not torch.equal(tensor.to(kept.device, kept.dtype), kept):
                raise ValueError(f"checkpoint tensor {hf_name!r} differs from the one dsmoe keeps for {name!r} "
                                 "(dsmoe shares one copy)")

    def owner(self, name: str) -> tuple[nn.Module, str]:
        module_name, _, attribute = name.rpartition(".")
        return self.model.get_submodule(module_name), attribute

    def assign(self, name: str, tensor: torch.Tensor) -> None:
        """A parameter becomes the tensor in `dtype`; a buffer keeps its own dtype (the fp32 expert bias)."""
        module, attribute = self.owner(name)
        if attribute in module._parameters:
            module._parameters[attribute] = nn.Parameter(tensor.to(self.device, self.dtype), requires_grad=True)
        else:
            module._buffers[attribute] = tensor.to(self.device, module._buffers[attribute].dtype)

    def stacked(self, name: str) -> torch.Tensor:
        """The stacked expert tensor `name`, allocated (uninitialised) when its first slice arrives."""
        module, attribute = self.owner(name)
        current = module._parameters[attribute]
        if current.is_meta:
            current = module._parameters[attribute] = nn.Parameter(torch.empty(current.shape, dtype=self.dtype,
                                                                               device=self.device))
        return current.data

    def finish(self, source: str) -> DeepSeekMoEForCausalLM:
        """Check completeness and the stored copies, tie the head, rebuild computed buffers (on the CPU, then moved);
        the model in eval mode on the device."""
        check_names(self.pieces, self.placed, source)
        if self.model.config.tie_word_embeddings:
            self.model.lm_head.weight = self.model.embed_tokens.weight
        for name in list(self.pending_copies):
            self.check_copies(name)
        rebuild_computed_buffers(self.model)
        return self.model.to(self.device).eval()


def rebuild_computed_buffers(model: DeepSeekMoEForCausalLM) -> None:
    """A meta build leaves computed buffers empty: RoPE's frequencies are rebuilt from the config (as the model's
    constructor builds them) and each router rebuilds its own; nothing else may stay on meta."""
    config = model.config
    model.rope = RotaryEmbedding(config.rope_head_dim, config.rope_theta, YarnScaling.from_config(config))
    for router in routers_of(model):
        router.rebuild_buffers()
    still_meta = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if still_meta:
        raise ValueError(f"tensor(s) {still_meta[:5]} were never filled")
