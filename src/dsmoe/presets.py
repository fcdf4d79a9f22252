"""Named model configurations: the papers' models and small baselines at matched parameters.

Paper presets follow DeepSeekMoE (Dai et al. 2024) Sec. 4.1 (2B), Sec. 5.1 (16B), Sec. 7.1 (145B) and
Appendix A. Expert widths are 0.25 (2B, 16B) and 0.125 (145B) of a standard FFN: 8/3 * hidden for 2B, the width
the paper's 2B tables count (a standard FFN of 8 * 1280^2 parameters: Table 2's 1.89B of expert parameters, and
Table 1-2's FLOPs per 2K tokens 2.9T, 4.3T, 5.8T and 24.6T, come out at F = 3,412 = 4 x 853), and 2.75 * hidden for
16B (the released model's experts) and 145B.
The 145B model keeps a dense first layer (Sec. 7.1: as in the 16B model, every FFN but the first layer's is a MoE
layer) whose width the paper does not give; paper-145b gives it the standard FFN's 11264 (= 8 x 1408), which counts
144.48B total / 22.06B activated against the paper's "approximately 144.6B" / "around 22.2B" (Sec. 7.1). The
0.14B gap is one more 11264-wide SwiGLU (3 x 4096 x 11264): a first layer twice the standard width, as the released
16B's 10944 is about twice its 5632, would close it, but the paper does not say so. The 16B preset's 10944 is the
released model's config.json.

The DeepSeek-V2 (Sec. 3.1.2), V2-Lite (Appendix B) and V3 (Sec. 4.2) presets are the released models, field by
field from their Hugging Face config.json (the 128K-context YaRN settings included; they add no parameters),
with the papers' training hyper-parameters where config.json differs: init std 0.006, V3's sequence-wise
balance factor 0.0001 (its config.json says 0.001), and V2's device-level balance, communication balance and
token dropping (Sec. 2.2.2-2.2.4 and 3.1.2: alpha_2 = 0.05, alpha_3 = 0.02, capacity factor 1.0 over D = 8 devices).
V3's counts leave its MTP module apart (ParamCount.main_model). `tiny-v3` has V3's mechanisms (MLA, sigmoid
gating with bias balancing, group-limited routing, MTP) at the `tiny` size. `tiny-v4` has DeepSeek-V4's MoE
mechanisms at that size (transformers' deepseek_v4: sqrt(softplus) gating with V3's bias balancing and no groups,
the first MoE layer hash-routed as V4's first 3 of 43, swiglu_limit 10.0, every layer MoE), with tiny-v3's MLA,
balance loss and MTP module; like tiny-v3 it keeps routed_scaling_factor at 1.0 (V4: 1.5, V3: 2.5).

The small baselines all have the same activated FFN width (1024) and, for the MoE ones, the same
total expert width (8192), like the paper's 2B comparison (Table 1), at a size that trains on a CPU.
"""

from __future__ import annotations

from dsmoe.config import ModelConfig
from dsmoe.field_rules import FieldError

_SMALL = dict(vocab_size=2048, hidden_size=192, n_layers=4, n_heads=6, max_seq_len=256, intermediate_size=1024)

_MLA = dict(attention="mla", kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
            rope_interleave=True, init_std=0.006)


def _yarn(mscale: float) -> dict:
    """DeepSeek's 128K-context YaRN: 40 x the 4K pretraining context (config.json's rope_scaling)."""
    return dict(max_seq_len=163840, rope_scaling_type="yarn", rope_scaling_factor=40.0,
                rope_original_max_position_embeddings=4096, rope_mscale=mscale, rope_mscale_all_dim=mscale)


_PRESETS: dict[str, dict] = {
    "tiny": dict(vocab_size=2048, hidden_size=192, n_layers=4, n_heads=6, max_seq_len=256, intermediate_size=512,
                 moe_intermediate_size=128, n_shared_experts=1, n_routed_experts=16, n_activated_experts=3,
                 first_k_dense_replace=1, aux_loss_alpha=0.01),
    "paper-2b": dict(vocab_size=8192, hidden_size=1280, n_layers=9, n_heads=10, head_dim=128, max_seq_len=2048,
                     intermediate_size=3412, moe_intermediate_size=853, n_shared_experts=1, n_routed_experts=63,
                     n_activated_experts=7, aux_loss_alpha=0.01, init_std=0.006),
    "paper-16b": dict(vocab_size=102400, hidden_size=2048, n_layers=28, n_heads=16, head_dim=128, max_seq_len=4096,
                      intermediate_size=10944, moe_intermediate_size=1408, n_shared_experts=2, n_routed_experts=64,
                      n_activated_experts=6, first_k_dense_replace=1, aux_loss_alpha=0.001, balance_scope="sequence",
                      init_std=0.006),
    "paper-145b": dict(vocab_size=102400, hidden_size=4096, n_layers=62, n_heads=32, head_dim=128, max_seq_len=4096,
                       intermediate_size=11264, moe_intermediate_size=1408, n_shared_experts=4,
                       n_routed_experts=128, n_activated_experts=12, first_k_dense_replace=1, aux_loss_alpha=0.003,
                       device_balance_alpha=0.05, n_devices=4, init_std=0.006),
    "deepseek-v2": dict(_MLA, **_yarn(0.707), vocab_size=102400, hidden_size=5120, n_layers=60, n_heads=128,
                        q_lora_rank=1536, intermediate_size=12288, moe_intermediate_size=1536, n_shared_experts=2,
                        n_routed_experts=160, n_activated_experts=6, first_k_dense_replace=1, n_group=8,
                        topk_group=3, routed_scaling_factor=16.0, balance_scope="sequence", aux_loss_alpha=0.003,
                        device_balance_alpha=0.05, comm_balance_alpha=0.02, n_devices=8,
                        device_capacity_factor=1.0),
    "deepseek-v2-lite": dict(_MLA, **_yarn(0.707), vocab_size=102400, hidden_size=2048, n_layers=27, n_heads=16,
                             intermediate_size=10944, moe_intermediate_size=1408, n_shared_experts=2,
                             n_routed_experts=64, n_activated_experts=6, first_k_dense_replace=1,
                             balance_scope="sequence", aux_loss_alpha=0.001),
    "deepseek-v3": dict(_MLA, **_yarn(1.0), vocab_size=129280, hidden_size=7168, n_layers=61, n_heads=128,
                        q_lora_rank=1536, intermediate_size=18432, moe_intermediate_size=2048, n_shared_experts=1,
                        n_routed_experts=256, n_activated_experts=8, first_k_dense_replace=3, router="sigmoid_topk",
                        n_group=8, topk_group=4, routed_scaling_factor=2.5,
                        balance_scope="sequence", aux_loss_alpha=0.0001, bias_update_speed=0.001, n_mtp_modules=1),
    "tiny-v3": dict(vocab_size=2048, hidden_size=192, n_layers=4, n_heads=6, max_seq_len=256, intermediate_size=512,
                    attention="mla", q_lora_rank=96, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16,
                    v_head_dim=32, moe_intermediate_size=128, n_shared_experts=1, n_routed_experts=16,
                    n_activated_experts=4, first_k_dense_replace=1, router="sigmoid_topk", n_group=4, topk_group=2,
                    balance_scope="sequence", aux_loss_alpha=0.0001, n_mtp_modules=1),
    "tiny-v4": dict(vocab_size=2048, hidden_size=192, n_layers=4, n_heads=6, max_seq_len=256, intermediate_size=512,
                    attention="mla", q_lora_rank=96, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16,
                    v_head_dim=32, moe_intermediate_size=128, n_shared_experts=1, n_routed_experts=16,
                    n_activated_experts=4, router="sqrtsoftplus_topk", n_hash_layers=1, swiglu_limit=10.0,
                    balance_scope="sequence", aux_loss_alpha=0.0001, n_mtp_modules=1),
    "dense": dict(_SMALL, n_routed_experts=0, n_shared_experts=0, aux_loss_alpha=0.0),
    "hash": dict(_SMALL, router="hash", moe_intermediate_size=1024, n_shared_experts=0, n_routed_experts=8,
                 n_activated_experts=1, aux_loss_alpha=0.0),
    "switch": dict(_SMALL, router="switch", moe_intermediate_size=1024, n_shared_experts=0, n_routed_experts=8,
                   n_activated_experts=1, capacity_factor=1.25),
    "gshard": dict(_SMALL, router="gshard", moe_intermediate_size=512, n_shared_experts=0, n_routed_experts=16,
                   n_activated_experts=2, capacity_factor=1.25),
    "deepseekmoe": dict(_SMALL, moe_intermediate_size=128, n_shared_experts=1, n_routed_experts=63,
                        n_activated_experts=7),
}


def names() -> list[str]:
    return list(_PRESETS)


def get(name: str, **overrides) -> ModelConfig:
    """The preset's validated config, with optional field overrides."""
    if not isinstance(name, str) or name not in _PRESETS:
        raise FieldError("preset", name, f"is unknown; choose one of: {', '.join(_PRESETS)}")
    return ModelConfig.from_dict({**_PRESETS[name], **overrides})
