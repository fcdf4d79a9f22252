"""The one dial: a flat model configuration with DeepSeek's own field names."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

DISPATCH_CHOICES = ("auto", "grouped_mm", "loop")
DERIVED_FIELDS = ("n_kv_heads", "head_dim")  # None = derived; kept None by to_dict, replace and save


@dataclass
class ModelConfig:
    """Configuration of a DeepSeekMoE decoder-only language model.

    Sizes
        vocab_size: number of token ids. Default 4096.
        hidden_size: width of the residual stream (d_model). Default 256.
        n_layers: number of decoder blocks. Default 4.
        n_heads: number of attention query heads. Default 4.
        n_kv_heads: number of key/value heads (grouped-query attention); None means n_heads.
        head_dim: width of one attention head; None means hidden_size // n_heads.
        max_seq_len: longest sequence the model (and its KV cache) accepts. Default 512.
        rope_theta: RoPE base frequency. Default 10000.0.
        norm_eps: epsilon of every RMSNorm. Default 1e-6.

    Feed-forward layers
        intermediate_size: width of a dense SwiGLU FFN (used in dense layers). Default 1024.
        moe_intermediate_size: width of ONE routed expert; fine-grained segmentation divides
            the standard FFN width by m and multiplies the expert count by m. Default 128.
        n_routed_experts: routed experts per MoE layer (N' = mN - K_s in DeepSeekMoE's notation);
            0 makes every layer dense. Default 16.
        n_shared_experts: always-active shared experts (K_s), stored as one fused SwiGLU of width
            n_shared_experts * moe_intermediate_size, as DeepSeek's checkpoints store it. Default 1.
        n_activated_experts: routed experts chosen per token, the top-k (K' = mK - K_s). Default 4.
        first_k_dense_replace: the first k layers use a dense FFN instead of MoE. Default 0.
        moe_layer_freq: a layer i >= first_k_dense_replace is MoE when i % moe_layer_freq == 0.
            Default 1 (every layer).
        moe_layer_indices: explicit list of MoE layer indices ("hybrid" models); when set it
            overrides first_k_dense_replace and moe_layer_freq. Default None.

    Routing
        router: name of the router in `dsmoe.routers.ROUTERS` (softmax_topk, sigmoid_topk,
            noisy_topk, switch, gshard, hash, expert_choice, soft_moe). Default "softmax_topk".
        norm_topk_prob: renormalise the top-k combine weights to sum to 1. Default False
            (DeepSeekMoE-16B does not; DeepSeek-V3 does).
        routed_scaling_factor: multiplies the routed combine weights (DeepSeek-V3: 2.5). Default 1.0.
        n_group: expert groups for group-/device-limited routing (DeepSeek-V2 Sec. 2.2.2,
            DeepSeek-V3 Sec. 2.1.2); 1 disables it. Default 1.
        topk_group: groups a token may route to (M in DeepSeek-V2). Default 1.
        capacity_factor: expert capacity multiplier for the capacity routers (switch, gshard,
            expert_choice): capacity = ceil(capacity_factor * tokens * top_k / n_routed_experts).
            Default 1.0.
        dispatch: expert computation kernel: "grouped_mm" (sorted dropless dispatch with
            torch._grouped_mm), "loop" (plain loop over experts, the reference) or "auto"
            (grouped_mm where the op and the shapes allow it). Default "auto".

    Balance losses (returned by forward, never stored)
        aux_loss_alpha: alpha_1 of the expert-level balance loss (DeepSeekMoE Eq. 12-14). Default 0.01.
        device_balance_alpha: alpha_2 of the device-level balance loss (DeepSeekMoE Eq. 15-17).
            Default 0.0 (off).
        n_devices: number of device groups the routed experts are split into for the
            device-level loss (D in DeepSeekMoE Eq. 15). Default 1.
        seq_aux: compute the expert-level loss per sequence and average over sequences
            (DeepSeekMoE-16B; DeepSeek-V3 Eq. 17-20). Reported as "seq_balance". Default False.
        z_loss_coef: coefficient of the router z-loss, mean(logsumexp(router logits)^2)
            (ST-MoE, Zoph et al. 2022). Default 0.0 (off).
        bias_update_speed: gamma of auxiliary-loss-free balancing (DeepSeek-V3 Sec. 2.1.2), used by
            the sigmoid_topk router's per-expert bias, updated once per optimizer step. Default 0.001.

    Embeddings and initialisation
        tie_word_embeddings: share the input embedding with the output head. Default False.
        init_std: standard deviation of the normal weight initialisation. Default 0.02.
    """

    vocab_size: int = 4096
    hidden_size: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None
    head_dim: int | None = None
    max_seq_len: int = 512
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    intermediate_size: int = 1024
    moe_intermediate_size: int = 128
    n_routed_experts: int = 16
    n_shared_experts: int = 1
    n_activated_experts: int = 4
    first_k_dense_replace: int = 0
    moe_layer_freq: int = 1
    moe_layer_indices: list[int] | None = None
    router: str = "softmax_topk"
    norm_topk_prob: bool = False
    routed_scaling_factor: float = 1.0
    n_group: int = 1
    topk_group: int = 1
    capacity_factor: float = 1.0
    dispatch: str = "auto"
    aux_loss_alpha: float = 0.01
    device_balance_alpha: float = 0.0
    n_devices: int = 1
    seq_aux: bool = False
    z_loss_coef: float = 0.0
    bias_update_speed: float = 0.001
    tie_word_embeddings: bool = False
    init_std: float = 0.02

    def __post_init__(self) -> None:
        from dsmoe.config_checks import validate

        validate(self)
        self._derived = {name for name in DERIVED_FIELDS if getattr(self, name) is None}
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.n_heads
        if self.moe_layer_indices is not None:
            self.moe_layer_indices = sorted(self.moe_layer_indices)

    @property
    def moe_layers(self) -> list[int]:
        """Indices of the layers whose FFN is a MoE layer (DeepSeek-V2's placement rule)."""
        if self.n_routed_experts == 0:
            return []
        if self.moe_layer_indices is not None:
            return list(self.moe_layer_indices)
        return [
            i
            for i in range(self.n_layers)
            if i >= self.first_k_dense_replace and i % self.moe_layer_freq == 0
        ]

    @property
    def slots_per_expert(self) -> int:
        """Soft MoE slots per expert, matching top-k token choice FLOPs at max_seq_len."""
        return max(1, math.ceil(self.max_seq_len * self.n_activated_experts / self.n_routed_experts))

    def replace(self, **changes: Any) -> "ModelConfig":
        """A validated copy with some fields changed."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Field values as given: derived fields that were left unset stay None."""
        values = dataclasses.asdict(self)
        return {k: None if k in self._derived else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        """Build from a mapping; an unknown key raises ValueError suggesting the closest field."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; valid fields: {', '.join(known)}"
                raise ValueError(f"unknown ModelConfig field {key!r}{hint}")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        """Read a .toml (flat, or under a [model] table) or .json file."""
        path = Path(path)
        if path.suffix == ".json":
            values = json.loads(path.read_text())
        elif path.suffix == ".toml":
            values = tomllib.loads(path.read_text())
        else:
            raise ValueError(f"config path {str(path)!r} must end in .toml or .json")
        return cls.from_dict(values.get("model", values))

    def save(self, path: str | Path) -> None:
        """Write as .toml or .json (None-valued fields are left out of TOML, which has no null)."""
        path = Path(path)
        values = self.to_dict()
        if path.suffix == ".json":
            path.write_text(json.dumps(values, indent=2) + "\n")
        elif path.suffix == ".toml":
            path.write_text(tomli_w.dumps({k: v for k, v in values.items() if v is not None}))
        else:
            raise ValueError(f"config path {str(path)!r} must end in .toml or .json")
