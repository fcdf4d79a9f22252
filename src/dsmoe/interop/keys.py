"""Tensor names: dsmoe's state dict against a Hugging Face family's (transformers' Llama-style layout).

Two layouts of the routed experts exist. On disk (published checkpoints, transformers' own save_pretrained) every
expert is three matrices, `{moe}.experts.{e}.{gate,up,down}.weight` [F, D], [F, D], [D, F]; transformers 5 fuses
them on load (conversion_mapping.py: MergeModulelist + Concatenate) into `mlp.experts.gate_up_proj` [E, 2F, D]
(gate rows first) and `mlp.experts.down_proj` [E, D, F], the layout dsmoe's RoutedExperts keeps. DeepSeek-V3's
MTP modules sit after the main layers as `model.layers.{n_layers + k}.*` (enorm, hnorm, eh_proj, shared_head.norm,
the block, and copies of the embedding and output head, which dsmoe shares with the main model).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KeyNames:
    """How a family names its MoE parts on disk (Mixtral: block_sparse_moe, w1/w3/w2; Qwen2-MoE: shared_expert)."""

    moe: str = "mlp"
    expert_projections: tuple[str, str, str] = ("gate_proj", "up_proj", "down_proj")
    shared_experts: str = "shared_experts"
    router_tensors: tuple[tuple[str, str], ...] = (("weight", "weight"),)  # the router's Router.HF_TENSOR_NAMES

    def in_transformers(self) -> "KeyNames":
        """The names inside a transformers 5 model, after its checkpoint conversion renamed the MoE block."""
        return dataclasses.replace(self, moe="mlp")


@dataclass(frozen=True)
class Piece:
    """Where one Hugging Face tensor lives in dsmoe: the tensor `name`, or rows [rows[0], rows[1]) of expert
    `expert` of the stacked tensor `name`. duplicate: a copy dsmoe does not keep, which must equal `name`;
    optional: may be absent (a tied output head)."""

    name: str
    expert: int | None = None
    rows: tuple[int, int] | None = None
    duplicate: bool = False
    optional: bool = False

    def shape(self, full: torch.Size) -> tuple[int, ...]:
        """This piece's shape inside dsmoe's tensor of shape `full`."""
        shape = tuple(full[1:]) if self.expert is not None else tuple(full)
        return (self.rows[1] - self.rows[0], *shape[1:]) if self.rows else shape

    def take(self, tensor: torch.Tensor) -> torch.Tensor:
        """This piece of dsmoe's `tensor` (a view)."""
        if self.expert is not None:
            tensor = tensor[self.expert]
        return tensor[self.rows[0]:self.rows[1]] if self.rows else tensor


LAYER_RENAMES = (("attn_norm.", "input_layernorm."), ("ffn_norm.", "post_attention_layernorm."),
                 ("attn.", "self_attn."))
MTP_RENAMES = (("enorm.", "enorm."), ("hnorm.", "hnorm."), ("eh_proj.", "eh_proj."), ("norm.", "shared_head.norm."))
TOP_LEVEL = {"embed_tokens.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight",
             "lm_head.weight": "lm_head.weight"}


def layer_suffix(rest: str, names: KeyNames) -> str:
    """Name inside one decoder layer: dsmoe's `rest` after `layers.{i}.` -> transformers' after `model.layers.{i}.`."""
    moe = names.moe
    router = {f"ffn.router.{own}": f"{moe}.gate.{hf}" for own, hf in names.router_tensors}
    if rest.startswith("ffn.router."):
        if rest not in router:
            raise ValueError(f"dsmoe router tensor {rest!r} has no Hugging Face counterpart")
        return router[rest]
    renames = LAYER_RENAMES + (("ffn.shared_experts.", f"{moe}.{names.shared_experts}."),
                               ("ffn.shared_expert_gate.", f"{moe}.shared_expert_gate."),
                               ("ffn.experts.", f"{moe}.experts."))
    for old, new in renames + (("ffn.", "mlp."),):
        if rest.startswith(old):
            return new + rest[len(old):]
    raise ValueError(f"dsmoe tensor {rest!r} has no Hugging Face counterpart")


def hf_name(name: str, names: KeyNames, n_layers: int) -> str:
    """transformers' name of the dsmoe tensor `name` (routed experts fused, as transformers holds them)."""
    if name in TOP_LEVEL:
        return TOP_LEVEL[name]
    match = re.fullmatch(r"(mtp\.)?layers\.(\d+)\.(.+)", name)
    if match is None:
        raise ValueError(f"dsmoe tensor {name!r} has no Hugging Face counterpart")
    is_mtp, index, rest = match.group(1), int(match.group(2)), match.group(3)
    if not is_mtp:
        return f"model.layers.{index}.{layer_suffix(rest, names)}"
    prefix = f"model.layers.{n_layers + index}."
    for old, new in MTP_RENAMES:
        if rest.startswith(old):
            return prefix + new + rest[len(old):]
    return prefix + layer_suffix(rest.removeprefix("block."), names)


def hf_pieces(state_shapes: dict[str, torch.Size], names: KeyNames, n_layers: int, n_mtp_modules: int,
              tied: bool, per_expert: bool) -> dict[str, Piece]:
    """Every Hugging Face tensor name of a dsmoe model with these state-dict shapes -> where it lives in dsmoe.

    per_expert: the on-disk layout (one tensor per expert and projection) instead of transformers' fused one.
    """
    pieces: dict[str, Piece] = {}
    for name, shape in state_shapes.items():
        if tied and name == "lm_head.weight":
            pieces["lm_head.weight"] = Piece("embed_tokens.weight", duplicate=True, optional=True)
        elif per_expert and name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            pieces.update(expert_pieces(name, shape, hf_name(name, names, n_layers), names))
        else:
            pieces[hf_name(name, names, n_layers)] = Piece(name)
    for index in range(n_layers, n_layers + n_mtp_modules):
        pieces[f"model.layers.{index}.embed_tokens.weight"] = Piece("embed_tokens.weight", duplicate=True)
        pieces[f"model.layers.{index}.shared_head.head.weight"] = Piece("lm_head.weight", duplicate=True)
    return pieces


def expert_pieces(name: str, shape: torch.Size, fused: str, names: KeyNames) -> dict[str, Piece]:
    """`experts.gate_up_proj` [E, 2F, D] -> E gate [F, D] and E up [F, D]; `experts.down_proj` -> E down [D, F]."""
    prefix = fused.rsplit(".", 1)[0]
    gate, up, down = names.expert_projections
    if name.endswith("gate_up_proj"):
        width = shape[1] // 2
        return {f"{prefix}.{e}.{projection}.weight": Piece(name, e, rows)
                for e in range(shape[0]) for projection, rows in ((gate, (0, width)), (up, (width, 2 * width)))}
    return {f"{prefix}.{e}.{down}.weight": Piece(name, e) for e in range(shape[0])}
