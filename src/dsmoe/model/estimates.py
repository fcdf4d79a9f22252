"""Cost estimates derived from the module structure on the meta device: FLOPs, memory, KV cache, routing choices.

Conventions (each stated where it is used):
- FLOPs, the papers' count (the default): 2 per multiply-add of every weight a token is multiplied with except
  the router gate; attention scores and values over the whole context L; training = 3 x forward. This is
  DeepSeek LLM's M = 72 n_layer d^2 + 12 n_layer d l_seq (Bi et al. 2024, Sec. 3.2, Eq. 2) plus the output
  head's 6 n_vocab d, the count behind DeepSeekMoE's "FLOPs per 2K/4K tokens" (Tables 1-6).
- FLOPs, causal: also the router gates, and attention over the mean causal context (L + 1) / 2 only (what a
  causal kernel that skips masked blocks computes); printed beside the papers' count.
- Routed experts count in the ratio K'/N' (exact for dropless top-k; the capacity, expert-choice and
  Soft MoE routers are sized to match it on average).
- MTP modules count in FLOPs and activations (they run in every training forward), not in the KV cache.
- Multi-head latent attention counts as its plain path (per-head keys and values expanded from the latent).
- Sizes print in decimal units (1 GB = 1e9 bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.model.accounting import ParamCount, count_module_params
from dsmoe.model.attention import Attention
from dsmoe.model.block import DecoderBlock
from dsmoe.model.mla import MultiHeadLatentAttention
from dsmoe.model.moe import MoE, RoutedExperts, SwiGLU
from dsmoe.model.transformer import DeepSeekMoEForCausalLM
from dsmoe.routers import Router

FP32_BYTES = 4
ADAM_MOMENT_BYTES = 2 * FP32_BYTES  # AdamW's exp_avg and exp_avg_sq, kept in fp32 (Loshchilov & Hutter 2019)


@dataclass
class CostEstimate:
    """Per-token FLOPs, training/inference memory in bytes and routing combinatorics of one config.

    flops_per_token_matmul + flops_per_token_attention = flops_per_token_forward (the papers' count, see the
    module docstring); flops_per_token_training_causal adds the router gates and counts attention causally.
    activation_bytes* are for one training step of batch_size x seq_len (see activation_bytes).
    coarse_expert_combinations is None when the config has no integral coarse-grained equivalent.
    """

    params: ParamCount
    batch_size: int
    seq_len: int
    dtype: str
    flops_per_token_matmul: int
    flops_per_token_router: int
    flops_per_token_attention: int
    flops_per_token_attention_causal: int
    flops_per_token_forward: int
    flops_per_token_training: int
    flops_per_token_training_causal: int
    weight_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int
    activation_bytes_checkpointed: int
    kv_cache_bytes_per_token: int
    kv_cache_bytes_per_token_mha: int
    expert_combinations: int
    coarse_expert_combinations: int | None

    def training_bytes(self, checkpointed: bool) -> int:
        """Weights + gradients + optimizer states + activations of one step."""
        activations = self.activation_bytes_checkpointed if checkpointed else self.activation_bytes
        return self.weight_bytes + self.gradient_bytes + self.optimizer_bytes + activations

    def table(self) -> str:
        tokens = self.batch_size * self.seq_len
        coarse = "n/a" if self.coarse_expert_combinations is None else f"{self.coarse_expert_combinations:,}"
        rows = [
            ("params total / activated", f"{human_count(self.params.total)} / {human_count(self.params.activated)}"),
            ("FLOPs/token matmul (fwd)", human_flops(self.flops_per_token_matmul)),
            ("FLOPs/token router gates (fwd)", human_flops(self.flops_per_token_router)),
            (f"FLOPs/token attention (fwd, L={self.seq_len})", human_flops(self.flops_per_token_attention)),
            ("FLOPs/token forward", human_flops(self.flops_per_token_forward)),
            ("FLOPs/token training (3x fwd)", human_flops(self.flops_per_token_training)),
            (f"FLOPs/step training ({tokens:,} tokens)", human_flops(self.flops_per_token_training * tokens)),
            ("FLOPs/step training, causal + router", human_flops(self.flops_per_token_training_causal * tokens)),
            (f"weights ({self.dtype})", human_bytes(self.weight_bytes)),
            (f"gradients ({self.dtype})", human_bytes(self.gradient_bytes)),
            ("AdamW states" + (" + fp32 master" if bytes_per_element(self.dtype) < FP32_BYTES else ""),
             human_bytes(self.optimizer_bytes)),
            (f"activations (B={self.batch_size}, L={self.seq_len})", human_bytes(self.activation_bytes)),
            ("activations, per-block checkpointing", human_bytes(self.activation_bytes_checkpointed)),
            ("training total / with checkpointing",
             f"{human_bytes(self.training_bytes(False))} / {human_bytes(self.training_bytes(True))}"),
            ("KV cache per token (MHA equivalent)",
             f"{human_bytes(self.kv_cache_bytes_per_token)} ({human_bytes(self.kv_cache_bytes_per_token_mha)})"),
            (f"KV cache for B={self.batch_size}, L={self.seq_len}",
             human_bytes(self.kv_cache_bytes_per_token * tokens)),
            ("expert combinations C(N', K')", f"{self.expert_combinations:,}"),
            ("coarse-grained equivalent C(N, K)", coarse),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join([f"{name:<{width}}  {value:>22}" for name, value in rows] + [
            "FLOPs: the papers' count (DeepSeek LLM Eq. 2 + the output head): no router gates, attention over all L",
            "keys; causal + router: with the router gates, attention over the (L+1)/2 keys a causal mask keeps"])


def human_bytes(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.3g} B"


def human_count(n: float) -> str:
    return f"{n / 1e9:.3g} B" if n >= 1e9 else f"{n / 1e6:.3g} M"


def human_flops(n: float) -> str:
    return f"{n / 1e12:.3g} TFLOP" if n >= 1e12 else f"{n / 1e9:.3g} GFLOP"


def bytes_per_element(dtype: str) -> int:
    """Element size of a torch dtype given by name ("float32": 4, "bfloat16": 2)."""
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
        raise ValueError(f"dtype={dtype!r} is not a torch floating-point dtype name (e.g. 'float32', 'bfloat16')")
    return torch_dtype.itemsize


def matmul_weights_per_token(model: nn.Module, config: ModelConfig) -> int:
    """Matmul weight elements one token multiplies with, the router gate aside: every nn.Linear (attention,
    dense FFN, shared experts, LM head) and K'/N' of the routed experts; embedding lookups are free.
    Each MTP depth adds its module and another pass through the shared head (depth k sees L - k of the
    L positions; counted as L, exact as L grows)."""
    weights = 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            weights += module.weight.numel()
        elif isinstance(module, RoutedExperts):  # only K' of the N' stacked experts see a token
            stacked = sum(p.numel() for p in module.parameters())
            weights += stacked * config.n_activated_experts // config.n_routed_experts
    return weights + config.n_mtp_modules * model.lm_head.weight.numel()


def router_gate_weights(model: nn.Module) -> int:
    """The router gates [E, D] a token multiplies with (noisy_topk's noise is training-only); the papers'
    FLOP counts leave them out (DeepSeekMoE 145B's 585.6T per 4K tokens is exact without them)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, Router) and m.traits.has_gate)


@dataclass
class AttentionWidths:
    """Per-token elements of one attention layer: queries, keys and values as attended (all heads), the
    KV-cache entry, the MHA cache it replaces, and the latents MLA also keeps for backward."""

    query: int
    key: int
    value: int
    cached: int
    cached_mha: int
    latent: int


def attention_widths(attn: nn.Module) -> AttentionWidths:
    """MHA/GQA caches keys and values (n_kv_heads * head_dim each; MHA: n_heads); MLA caches c_kv and the
    shared RoPE key, kv_lora_rank + qk_rope_head_dim (DeepSeek-V2 Sec. 2.1.4, Table 1)."""
    if isinstance(attn, MultiHeadLatentAttention):
        key, value = attn.n_heads * attn.qk_head_dim, attn.n_heads * attn.v_head_dim
        cached = attn.kv_lora_rank + attn.qk_rope_head_dim
        return AttentionWidths(key, key, value, cached, key + value, cached + (attn.q_lora_rank or 0))
    key, value = attn.k_proj.out_features, attn.v_proj.out_features
    return AttentionWidths(attn.q_proj.out_features, key, value, key + value, 2 * attn.q_proj.out_features, 0)


def attention_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (Attention, MultiHeadLatentAttention))]


def attention_flops_per_token(model: nn.Module, seq_len: int, causal: bool = False) -> int:
    """Scores QK^T and the value sum, 2 * n_heads * (qk_head_dim + v_head_dim) FLOPs per key and layer, over all
    seq_len keys as the papers count them (DeepSeek LLM Eq. 2's 12 n_layer d l_seq = 3 x 2 x 2 d l_seq;
    Chinchilla App. F), or with causal=True over the mean causal context (seq_len + 1) / 2 a mask keeps: token
    t attends to t keys. Values count per query head (GQA shares them, each head still sums them)."""
    flops_per_key = 0
    for attn in attention_modules(model):
        widths = attention_widths(attn)
        flops_per_key += 2 * (widths.query + widths.value * widths.query // widths.key)
    return flops_per_key * (seq_len + 1) // 2 if causal else flops_per_key * seq_len


def swiglu_activation_elements(ffn: SwiGLU, rows: int) -> int:
    """gate and up outputs and their gated product (the down projection's input): [rows, 2F + F]."""
    return rows * 3 * ffn.gate_proj.out_features


def moe_activation_bytes(moe: MoE, tokens: int, top_k: int, element_bytes: int) -> int:
    """Routed: each token's K' gathered input copies and SwiGLU intermediates [T*K', D + 3F];
    shared experts as a SwiGLU; router logits and probabilities [T, gate rows] in fp32."""
    _, hidden, width = moe.experts.down_proj.shape
    routed = tokens * top_k * (hidden + 3 * width)
    shared = swiglu_activation_elements(moe.shared_experts, tokens) if moe.shared_experts is not None else 0
    gate_rows = moe.router.weight.shape[0] if moe.router.traits.has_gate else 0
    return (routed + shared) * element_bytes + 2 * tokens * gate_rows * FP32_BYTES


def block_activation_bytes(block: DecoderBlock, tokens: int, top_k: int, element_bytes: int) -> int:
    """Tensors one pre-norm block saves for backward: both norms' inputs and outputs [T, D] each;
    q, k, v (after RoPE), MLA's latents and the attention output [T, H*hd or H_kv*hd], with a fused
    (flash-style) attention that keeps no [L, L] scores; the FFN's intermediates (dense SwiGLU or MoE)."""
    hidden = block.attn_norm.weight.numel()
    widths = attention_widths(block.attn)
    output = widths.value * widths.query // widths.key
    attention = tokens * (widths.query + widths.key + widths.value + widths.latent + output)
    norms = 4 * tokens * hidden
    if block.is_moe:
        return (norms + attention) * element_bytes + moe_activation_bytes(block.ffn, tokens, top_k, element_bytes)
    return (norms + attention + swiglu_activation_elements(block.ffn, tokens)) * element_bytes


def activation_bytes(model: nn.Module, config: ModelConfig, tokens: int, element_bytes: int) -> tuple[int, int]:
    """(without, with per-block checkpointing) activation bytes of one training step of `tokens` tokens.

    Both count the head: final norm output [T, D] and the logits [T, V] in fp32 (the cross-entropy input),
    once more per MTP depth, whose blocks count like the main ones. Without checkpointing every block's
    saved tensors are live at the start of backward; with per-block checkpointing only each block's input
    [T, D] is kept, plus one block's recomputed saved tensors.
    """
    all_blocks = list(model.layers) + ([m.block for m in model.mtp.layers] if model.mtp is not None else [])
    blocks = [block_activation_bytes(b, tokens, config.n_activated_experts, element_bytes) for b in all_blocks]
    heads = 1 + config.n_mtp_modules
    head = heads * tokens * (config.hidden_size * element_bytes + config.vocab_size * FP32_BYTES)
    block_inputs = len(blocks) * tokens * config.hidden_size * element_bytes
    return sum(blocks) + head, block_inputs + max(blocks) + head


def kv_cache_bytes_per_token(model: nn.Module, element_bytes: int) -> tuple[int, int]:
    """(cached, MHA equivalent) over the main model's layers (MTP modules keep no cache): GQA caches
    2 * n_kv_heads * head_dim elements per layer and token (MHA: n_kv_heads = n_heads; Ainslie et al. 2023);
    MLA caches kv_lora_rank + qk_rope_head_dim against MHA's n_heads * (qk_head_dim + v_head_dim)."""
    widths = [attention_widths(block.attn) for block in model.layers]
    return sum(w.cached for w in widths) * element_bytes, sum(w.cached_mha for w in widths) * element_bytes


def coarse_expert_combinations(config: ModelConfig) -> int | None:
    """C(N, K) of the coarse MoE the fine-grained one was segmented from (DeepSeekMoE Sec. 3.1): with
    m = intermediate_size / moe_intermediate_size, N' = mN - K_s and K' = mK - K_s (Sec. 3.2), so
    N = (N' + K_s) / m and K = (K' + K_s) / m. None unless m > 1 and all three divide exactly."""
    if config.n_routed_experts == 0 or config.intermediate_size % config.moe_intermediate_size:
        return None
    m = config.intermediate_size // config.moe_intermediate_size
    n_fine = config.n_routed_experts + config.n_shared_experts
    k_fine = config.n_activated_experts + config.n_shared_experts
    if m == 1 or n_fine % m or k_fine % m:
        return None
    return math.comb(n_fine // m, k_fine // m)


def optimizer_bytes(total_params: int, element_bytes: int) -> int:
    """AdamW: two fp32 moments per parameter (8 bytes), plus an fp32 master copy (4 bytes) when the
    weights are held in a narrower dtype (mixed-precision training, Micikevicius et al. 2018)."""
    master = FP32_BYTES if element_bytes < FP32_BYTES else 0
    return total_params * (ADAM_MOMENT_BYTES + master)


def meta_model(config: ModelConfig) -> DeepSeekMoEForCausalLM:
    with torch.device("meta"):
        return DeepSeekMoEForCausalLM(config)


def estimate_costs(config: ModelConfig, batch_size: int, seq_len: int, dtype: str = "float32") -> CostEstimate:
    """FLOPs, memory and routing combinatorics of `config`, built on the meta device (nothing allocated).

    FLOPs per token, the papers' count: 2 per multiply-add of the activated matmul weights but the router
    gates, plus attention scores/values over all seq_len keys; training = 3 x forward (forward, then backward
    for activations and for weights: Kaplan et al. 2020 Sec. 2.1). The causal count beside it adds the gates
    and takes attention over the mean causal context (seq_len + 1) / 2.
    Memory: weights and gradients in `dtype`; AdamW's two fp32 moments (8 bytes/param) plus an fp32
    master copy (4 bytes/param) when `dtype` is narrower than fp32; activations of one training step
    of batch_size x seq_len tokens (tensors listed in block_activation_bytes and activation_bytes).
    """
    element_bytes = bytes_per_element(dtype)
    model = meta_model(config)
    params = count_module_params(model, config)
    matmul = 2 * matmul_weights_per_token(model, config)  # 2 FLOPs per multiply-add
    router = 2 * router_gate_weights(model)
    attention = attention_flops_per_token(model, seq_len)
    attention_causal = attention_flops_per_token(model, seq_len, causal=True)
    activations, activations_checkpointed = activation_bytes(model, config, batch_size * seq_len, element_bytes)
    kv_cache, kv_cache_mha = kv_cache_bytes_per_token(model, element_bytes)
    return CostEstimate(
        params=params, batch_size=batch_size, seq_len=seq_len, dtype=dtype,
        flops_per_token_matmul=matmul, flops_per_token_router=router, flops_per_token_attention=attention,
        flops_per_token_attention_causal=attention_causal, flops_per_token_forward=matmul + attention,
        flops_per_token_training=3 * (matmul + attention),  # backward = 2 x forward (Kaplan et al. 2020, Sec. 2.1)
        flops_per_token_training_causal=3 * (matmul + router + attention_causal),
        weight_bytes=params.total * element_bytes, gradient_bytes=params.total * element_bytes,
        optimizer_bytes=optimizer_bytes(params.total, element_bytes),
        activation_bytes=activations, activation_bytes_checkpointed=activations_checkpointed,
        kv_cache_bytes_per_token=kv_cache, kv_cache_bytes_per_token_mha=kv_cache_mha,
        expert_combinations=math.comb(config.n_routed_experts, config.n_activated_experts),
        coarse_expert_combinations=coarse_expert_combinations(config),
    )
