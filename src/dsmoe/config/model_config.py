"""The one dial: a flat model configuration with DeepSeek's own field names."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsmoe.config.derived import derive_unset_fields, undo_copied_derivations
from dsmoe.config.model_checks import validate
from dsmoe.registry import ROUTERS
from dsmoe.structured_files import read_table

RENAMED_FIELDS = {"dispatch": "expert_kernel"}  # old name -> new name: configs and checkpoints saved before still load


def read_renamed_fields(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with every renamed field under its new name, each noted on stderr in one line; a mapping that gives
    both the old and the new name is an error naming both."""
    values = dict(values)
    for old, new in RENAMED_FIELDS.items():
        if old not in values:
            continue
        if new in values:
            raise ValueError(f"model.{old} and model.{new} are both given: {old} is the old name of {new}; "
                             f"keep only {new}")
        values[new] = values.pop(old)
        print(f"note: model.{old} is now model.{new}; read as {new}={values[new]!r}", file=sys.stderr)
    return values


@dataclass
class ModelConfig:
    """Configuration of a DeepSeekMoE decoder-only language model.

    n_kv_heads, head_dim and norm_topk_prob left None are derived (their names: `derived_fields`): they read as
    their derived values, stay None in to_dict and save, and are derived afresh in a copy (replace, and
    dataclasses.replace too) unless the copy is given a value of its own.

    Sizes
        vocab_size: number of token ids. Default 4096.
        hidden_size: width of the residual stream (d_model). Default 256.
        n_layers: number of decoder blocks. Default 4.
        n_heads: number of attention query heads. Default 4.
        n_kv_heads: number of key/value heads (grouped-query attention); None means n_heads. MHA only.
        head_dim: width of one attention head; None means hidden_size // n_heads. MHA only (MLA sets
            its widths with qk_nope_head_dim, qk_rope_head_dim and v_head_dim).
        max_seq_len: longest sequence the model (and its KV cache) accepts. Default 512.
        rope_theta: RoPE base frequency. Default 10000.0.
        norm_eps: epsilon of every RMSNorm (MLA's two low-rank norms use 1e-6, as DeepSeek's code). Default 1e-6.

    Attention
        attention: "mha" (multi-head attention with grouped-query heads) or "mla" (multi-head latent
            attention, DeepSeek-V2 Sec. 2.1, DeepSeek-V3 Sec. 2.1.1). Default "mha".
        attention_bias: biases on the projections that read the residual stream: q/k/v for "mha"
            (Qwen2-MoE's qkv_bias), q_a_proj and kv_a_proj_with_mqa for "mla" (as transformers'
            DeepseekV3Attention). Default False.
        o_proj_bias: bias on the output projection (with attention_bias: Llama, Qwen3-MoE and OLMoE's
            attention_bias; DeepSeek-V3's MLA puts it on o_proj too). Default False.
        qk_norm: RMSNorm on queries and keys before RoPE: "none", "head" (per head over head_dim, Qwen3-MoE)
            or "full" (over the whole q and k projections, OLMoE). Only with attention="mha". Default "none".
        q_lora_rank: MLA query compression width d_c' (DeepSeek-V2 Eq. 12); None projects queries
            directly (DeepSeek-V2-Lite). Default None.
        kv_lora_rank: MLA key/value latent width d_c, the per-token cache with qk_rope_head_dim. Default 128.
        qk_nope_head_dim: MLA per-head query/key width without RoPE (d_h). Default 64.
        qk_rope_head_dim: MLA decoupled RoPE width d_h^R, one key shared by all heads. Default 32.
        v_head_dim: MLA per-head value width. Default 64.
        mla_absorb: compute MLA with W_UK folded into the query and W_UV applied after attending to the
            latent (DeepSeek-V2 Sec. 2.1.2; DeepSeek-V3 inference attn_impl="absorb"); same logits as the
            plain path, which expands per-head keys and values. Default False.

    Rotary position embedding
        rope_interleave: rotate pairs (2i, 2i+1) (DeepSeek's MLA checkpoints: transformers' rope_interleave)
            instead of the half-split pairs (i, i + d/2) of Llama. Default False.
        rope_scaling_type: "none" or "yarn" (Peng et al. 2023), computed as transformers'
            _compute_yarn_parameters (with truncate=True). The rope_* fields below apply only to "yarn".
            Default "none".
        rope_scaling_factor: YaRN context extension factor s (>= 1). Default 1.0.
        rope_original_max_position_embeddings: pretraining context length; required by "yarn". Default None.
        rope_beta_fast, rope_beta_slow: rotation counts bounding YaRN's interpolation ramp. Default 32.0, 1.0.
        rope_mscale, rope_mscale_all_dim: DeepSeek's YaRN attention-temperature multipliers; 0 means unset.
            cos/sin are scaled by mscale(s, rope_mscale) / mscale(s, rope_mscale_all_dim) when both are set,
            else by mscale(s) = 0.1 ln s + 1; the softmax scale is multiplied by mscale(s, rope_mscale_all_dim)^2
            when rope_mscale_all_dim is set (DeepSeek-V2/V3 attention). Default 0.0, 0.0.

    Feed-forward layers
        intermediate_size: width of a dense SwiGLU FFN (used in dense layers). Default 1024.
        moe_intermediate_size: width of ONE routed expert; fine-grained segmentation divides
            the standard FFN width by m and multiplies the expert count by m. Default 128.
        n_routed_experts: routed experts per MoE layer (N' = mN - K_s in DeepSeekMoE's notation);
            0 makes every layer dense. Default 16.
        n_shared_experts: always-active shared experts (K_s), stored as one fused SwiGLU of width
            n_shared_experts * moe_intermediate_size, as DeepSeek's checkpoints store it. Default 1.
        shared_expert_intermediate_size: width of the fused shared expert when it is not
            n_shared_experts * moe_intermediate_size (Qwen2-MoE); None derives it. Default None.
        shared_expert_gate: scale the shared experts' output by sigmoid(w^T u_t), a Linear(hidden_size, 1)
            (Qwen2-MoE's shared_expert_gate). Default False.
        n_activated_experts: routed experts chosen per token, the top-k (K' = mK - K_s). Default 4.
        first_k_dense_replace: the first k layers use a dense FFN instead of MoE. Default 0.
        moe_layer_freq: a layer i >= first_k_dense_replace is MoE when i % moe_layer_freq == 0.
            Default 1 (every layer).
        moe_layer_indices: explicit list of MoE layer indices ("hybrid" models); when set it
            overrides first_k_dense_replace and moe_layer_freq. Default None.
        swiglu_limit: clamp the SwiGLU of the routed and shared experts (DeepSeek-V4, transformers' swiglu_limit):
            silu(min(gate, limit)) * clamp(up, -limit, limit), with no gradient where a value is clamped; the dense
            FFN layers are not clamped. None: no clamp. Default None.

    Routing
        router: name of the router in `dsmoe.routers.ROUTERS` (softmax_topk, sigmoid_topk, sqrtsoftplus_topk,
            noisy_topk, switch, gshard, hash, expert_choice, soft_moe, sinkhorn). Default "softmax_topk".
        n_hash_layers: the first n MoE layers route by a frozen token-id -> experts table, the learned gate (with
            the scoring function of `router`) weighting the K experts the table gives (DeepSeek-V4's hash layers, as
            transformers' DeepseekV4HashRouter computes them; dsmoe.routers.hash_gate: a seeded table, balanced over
            the vocabulary, saved with the model). Routers with a scoring function only (softmax_topk,
            sigmoid_topk, sqrtsoftplus_topk); these layers neither group-limit, drop, bias nor add a balance loss.
            Default 0.
        norm_topk_prob: renormalise the top-k combine weights to sum to 1. Default None: the router's paper's
            choice (its RouterTraits.renormalises), True for sigmoid_topk and sqrtsoftplus_topk (DeepSeek-V3 Eq. 13
            divides the chosen scores by their sum; V4 does the same), False for softmax_topk (DeepSeekMoE Eq. 3-5
            and DeepSeek-V2 gate with the softmax scores as they are) and for sinkhorn (Megatron-Core gates with the
            scores as they are), and for noisy_topk, switch, gshard, hash, expert_choice and soft_moe, which do not
            read it (each weights its experts as its own paper does). Mixtral's softmax over the top-k logits is
            softmax_topk with norm_topk_prob=True (the two are equal).
        routed_scaling_factor: multiplies the routed combine weights, after any renormalisation
            (DeepSeek-V3: 2.5; DeepSeek-V2: 16.0 without renormalisation). Default 1.0.
        n_group: expert groups for group-/device-limited routing (DeepSeek-V2 Sec. 2.2.2,
            DeepSeek-V3 Sec. 2.1.2); 1 disables it. DeepSeek-V2's topk_method "greedy" is softmax_topk
            with n_group=1, "group_limited_greedy" softmax_topk with groups (scored by their best expert);
            DeepSeek-V3's "noaux_tc" is sigmoid_topk with groups (scored by their top-2 sum). Default 1.
        topk_group: groups a token may route to (M in DeepSeek-V2). Default 1.
        group_score: how a group is scored for the top-`topk_group` choice, as the sum of its best n scores:
            "max" (n = 1, the best expert: DeepSeek-V2 Sec. 2.2.2's device-limited routing), "top2_sum" (n = 2:
            DeepSeek-V3's code and transformers' noaux_tc) or "topk_sum" (n = ceil(K_r / M) with
            K_r = n_activated_experts and M = topk_group: DeepSeek-V3 Sec. 2.1.2's node-limited routing, "the
            sum of the highest K_r/M affinity scores of the experts distributed on each node"). Only with
            n_group > 1. Default None: the router's own rule (its RouterTraits.group_score), "max" for
            softmax_topk, "top2_sum" for sigmoid_topk.
        device_capacity_factor: device-level token dropping in training (DeepSeek-V2 Sec. 2.2.4): each of the
            n_devices groups of consecutive experts keeps at most ceil(device_capacity_factor * T * K' /
            n_devices) of the T * K' token-expert pairs of a forward (its average budget times the factor; the
            paper uses 1.0), dropping its lowest-affinity pairs beyond that; evaluation never drops. Dropped
            pairs are counted in RouterStats.dropped_tokens. Routers with RouterTraits.device_dropping only
            (softmax_topk, sigmoid_topk). Default None (off).
        never_drop_share: the share of training sequences whose pairs are never dropped by device_capacity_factor
            (DeepSeek-V2 Sec. 2.2.4: "approximately 10%"). A sequence is protected when a fixed random hash of
            its token ids, mapped to [0, 1), is below this share: the same sequences in every layer and every
            run, about this share of all of them. Default 0.1.
        capacity_factor: expert capacity multiplier for the capacity routers (switch, gshard,
            expert_choice): capacity = ceil(capacity_factor * tokens * top_k / n_routed_experts).
            Default 1.0.
        sinkhorn_max_iterations: the most Sinkhorn iterations the sinkhorn router runs per training forward to
            balance its assignment (BASE layers, Lewis et al. 2021, as Megatron-Core's sinkhorn: rows of
            exp(logits) scaled to sum to 1/T, columns to 1/E); it stops earlier once converged (sinkhorn_tol).
            Megatron-Core has no such cap, but on skewed logits the column scalings grow into the thousands, where
            fp32 cannot resolve an absolute change of 1e-4, and its loop may never end. Routers with
            RouterTraits.sinkhorn_balanced only. Default 100.
        sinkhorn_tol: the sinkhorn router's iterations stop once the mean absolute change of the column scaling
            falls to this (Megatron-Core's tol). Default 0.0001.
        soft_moe_normalise: Soft MoE's normalisation (Puigcerver et al. 2023 Sec. 2.3): the logits are
            l2_normalize(X) times scale * l2_normalize(Phi), each token and each slot's parameters scaled to unit
            norm over the hidden width, scale a learned scalar (initialised to 1), which keeps the softmaxes from
            becoming one-hot as hidden_size grows. Slot-based routers (soft_moe) only. Default False.
        expert_kernel: how the routed experts compute their pairs (dispatch is the token movement, this the
            math): "grouped_mm" (the fused op over pairs sorted by expert, torch._grouped_mm), "loop" (a plain loop
            over experts, the reference) or "auto" (grouped_mm where the op and the shapes allow it). Configs
            written before it was renamed name it `dispatch`; they load with a note. Default "auto".

    Balance losses (returned by forward, never stored)
        aux_loss_alpha: alpha_1 of the expert-level balance loss (DeepSeekMoE Eq. 12-14); not read by sinkhorn,
            whose assignment is balanced without it (Megatron-Core refuses an aux loss with Sinkhorn routing).
            Default 0.01.
        device_balance_alpha: alpha_2 of the device-level balance loss (DeepSeekMoE Eq. 15-17).
            Default 0.0 (off).
        comm_balance_alpha: alpha_3 of the communication balance loss (DeepSeek-V2 Sec. 2.2.3): the
            devices are the n_group expert groups (needs n_group = n_devices > 1), M = topk_group. Reported as
            "comm_balance". Default 0.0 (off).
        n_devices: number of device groups the routed experts are split into for the
            device-level loss (D in DeepSeekMoE Eq. 15). Default 1.
        balance_scope: the tokens whose counts give f_i in the expert-level loss: "micro_batch" (those of one
            forward), "sequence" (each sequence's own, the loss averaged over sequences: DeepSeekMoE-16B's
            seq_aux, DeepSeek-V3 Eq. 17-20; reported as "seq_balance"; the device-level and communication losses
            are then per sequence too, as DeepSeek-V2 Sec. 2.2.3 defines all three over "the number of tokens in
            a sequence") or "global_batch" (every micro-batch of the optimizer step, counted by a no-grad pre-pass
            before any backward: Qiu et al. 2025, dsmoe.routers.global_balance; the expert-level loss only, the
            one that paper defines over the global batch). Default "micro_batch".
        seq_balance_count: what f_i counts in the sequence-wise loss (balance_scope="sequence"): "chosen" (the
            experts each token was routed to, after any bias and group limit, as DeepSeek's code counts its
            topk_idx) or "unbiased_topk" (DeepSeek-V3 Eq. 18 as written: 1(s_{i,t} in TopK({s_{j,t}}, K_r)), the
            top-K of the unbiased affinities over all experts). Default "chosen".
        noisy_topk_balance: the noisy_topk router's balance losses: "importance_load" (Shazeer et al. 2017
            Sec. 4 and Appendix A: w_importance * CV(Importance)^2 and w_load * CV(Load)^2, reported as
            "importance" and "load") or "expert_level" (the aux_loss_alpha loss above). Default "importance_load".
        importance_loss_weight: w_importance of Shazeer et al. 2017 Eq. 7. Default 0.1 (the paper's).
        load_loss_weight: w_load of Shazeer et al. 2017 Eq. 11. Default 0.1 (the paper's).
        z_loss_coef: coefficient of the router z-loss, mean(logsumexp(router logits)^2)
            (ST-MoE, Zoph et al. 2022). Default 0.0 (off).
        bias_update_speed: gamma of auxiliary-loss-free balancing (DeepSeek-V3 Sec. 2.1.2), used by
            the per-expert bias of sigmoid_topk and sqrtsoftplus_topk, updated once per optimizer step. Default 0.001.

    Multi-token prediction (DeepSeek-V3 Sec. 2.2)
        n_mtp_modules: D sequential MTP modules; module k predicts the token k + 1 ahead. 0 disables
            MTP. Default 0.
        mtp_loss_weight: lambda of L_MTP = lambda / D * sum_k L_MTP^k (Eq. 25), reported as
            aux_losses["mtp"]. Default 0.3 (DeepSeek-V3's first 10T tokens).

    Embeddings and initialisation
        tie_word_embeddings: share the input embedding with the output head. Default False.
        init_std: standard deviation of the normal weight initialisation. Default 0.02.

    Regularisation
        dropout: in training, dropout with this probability on each block's attention and FFN outputs before
            they join the residual stream (GPT-2's resid_pdrop; Srivastava et al. 2014), against memorising a
            corpus trained on for several epochs. Never at evaluation or generation. Default 0.0 (off).
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
    attention: str = "mha"
    attention_bias: bool = False
    o_proj_bias: bool = False
    qk_norm: str = "none"
    q_lora_rank: int | None = None
    kv_lora_rank: int = 128
    qk_nope_head_dim: int = 64
    qk_rope_head_dim: int = 32
    v_head_dim: int = 64
    mla_absorb: bool = False
    rope_interleave: bool = False
    rope_scaling_type: str = "none"
    rope_scaling_factor: float = 1.0
    rope_original_max_position_embeddings: int | None = None
    rope_beta_fast: float = 32.0
    rope_beta_slow: float = 1.0
    rope_mscale: float = 0.0
    rope_mscale_all_dim: float = 0.0
    intermediate_size: int = 1024
    moe_intermediate_size: int = 128
    n_routed_experts: int = 16
    n_shared_experts: int = 1
    shared_expert_intermediate_size: int | None = None
    shared_expert_gate: bool = False
    n_activated_experts: int = 4
    first_k_dense_replace: int = 0
    moe_layer_freq: int = 1
    moe_layer_indices: list[int] | None = None
    swiglu_limit: float | None = None
    router: str = "softmax_topk"
    n_hash_layers: int = 0
    norm_topk_prob: bool | None = None
    routed_scaling_factor: float = 1.0
    n_group: int = 1
    topk_group: int = 1
    group_score: str | None = None
    device_capacity_factor: float | None = None
    never_drop_share: float = 0.1
    capacity_factor: float = 1.0
    sinkhorn_max_iterations: int = 100
    sinkhorn_tol: float = 0.0001
    soft_moe_normalise: bool = False
    expert_kernel: str = "auto"
    aux_loss_alpha: float = 0.01
    device_balance_alpha: float = 0.0
    comm_balance_alpha: float = 0.0
    n_devices: int = 1
    balance_scope: str = "micro_batch"
    seq_balance_count: str = "chosen"
    noisy_topk_balance: str = "importance_load"
    importance_loss_weight: float = 0.1
    load_loss_weight: float = 0.1
    z_loss_coef: float = 0.0
    bias_update_speed: float = 0.001
    n_mtp_modules: int = 0
    mtp_loss_weight: float = 0.3
    tie_word_embeddings: bool = False
    init_std: float = 0.02
    dropout: float = 0.0

    def __post_init__(self) -> None:
        undo_copied_derivations(self)
        validate(self)
        self.derived_fields = derive_unset_fields(self)
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
    def hash_layers(self) -> list[int]:
        """Indices of the MoE layers routed by a token-id table (the first n_hash_layers of moe_layers)."""
        return self.moe_layers[:self.n_hash_layers]

    @property
    def rope_head_dim(self) -> int:
        """Width RoPE rotates: the whole head for MHA, the decoupled qk_rope_head_dim for MLA."""
        return self.qk_rope_head_dim if self.attention == "mla" else self.head_dim

    @property
    def shared_expert_width(self) -> int:
        """Width of the fused shared-expert SwiGLU (0: no shared experts)."""
        if self.shared_expert_intermediate_size is not None:
            return self.shared_expert_intermediate_size
        return self.n_shared_experts * self.moe_intermediate_size

    @property
    def group_score_rule(self) -> str:
        """group_score, or the router's own rule when it is unset."""
        return self.group_score or ROUTERS.traits(self.router).group_score or "max"

    @property
    def group_score_size(self) -> int:
        """n: a group's score is the sum of its best n scores (see group_score)."""
        return {"max": 1, "top2_sum": 2,
                "topk_sum": math.ceil(self.n_activated_experts / self.topk_group)}[self.group_score_rule]

    @property
    def slots_per_expert(self) -> int:
        """Soft MoE slots per expert, matching top-k token choice FLOPs at max_seq_len."""
        return max(1, math.ceil(self.max_seq_len * self.n_activated_experts / self.n_routed_experts))

    def replace(self, **changes: Any) -> "ModelConfig":
        """A validated copy with some fields changed."""
        return type(self).from_dict({**self.to_dict(), **read_renamed_fields(changes)})

    def to_dict(self) -> dict[str, Any]:
        """Field values as given: derived fields that were left unset stay None."""
        values = dataclasses.asdict(self)
        return {k: None if k in self.derived_fields else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        """Build from a mapping (a renamed field read under its new name, see RENAMED_FIELDS); an unknown key raises
        ValueError suggesting the closest field."""
        values = read_renamed_fields(values)
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
        values = read_table(path, "config file")
        return cls.from_dict(values.get("model", values))

    def save(self, path: str | Path) -> None:
        """Write as .toml or .json (None-valued fields are left out of TOML, which has no null)."""
        path = Path(path)
        values = self.to_dict()
        if path.suffix == ".json":
            path.write_text(json.dumps(values, indent=2) + "\n")
        elif path.suffix == ".toml":
            import tomli_w  # only writing TOML needs it: a bare GPU image without it can still build and run models
            path.write_text(tomli_w.dumps({k: v for k, v in values.items() if v is not None}))
        else:
            raise ValueError(f"config path {str(path)!r} must end in .toml or .json")
