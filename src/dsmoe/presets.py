"""Named model configurations: the papers' models and small baselines at matched parameters.

Paper presets follow DeepSeekMoE (Dai et al. 2024) Sec. 4.1 (2B), Sec. 5.1 (16B), Sec. 7.1 (145B) and
Appendix A. Expert widths are 0.25 (2B, 16B) and 0.125 (145B) of a standard FFN of 2.75 * hidden.

The small baselines all have the same activated FFN width (1024) and, for the MoE ones, the same
total expert width (8192), like the paper's 2B comparison (Table 1), at a size that trains on a CPU.
"""

from __future__ import annotations

from dsmoe.config import ModelConfig
from dsmoe.field_rules import FieldError

_SMALL = dict(vocab_size=2048, hidden_size=192, n_layers=4, n_heads=6, max_seq_len=256, intermediate_size=1024)

_PRESETS: dict[str, dict] = {
    "tiny": dict(vocab_size=2048, hidden_size=192, n_layers=4, n_heads=6, max_seq_len=256, intermediate_size=512,
                 moe_intermediate_size=128, n_shared_experts=1, n_routed_experts=16, n_activated_experts=3,
                 first_k_dense_replace=1, aux_loss_alpha=0.01),
    "paper-2b": dict(vocab_size=8192, hidden_size=1280, n_layers=9, n_heads=10, head_dim=128, max_seq_len=2048,
                     intermediate_size=3520, moe_intermediate_size=880, n_shared_experts=1, n_routed_experts=63,
                     n_activated_experts=7, aux_loss_alpha=0.01, init_std=0.006),
    "paper-16b": dict(vocab_size=102400, hidden_size=2048, n_layers=28, n_heads=16, head_dim=128, max_seq_len=4096,
                      intermediate_size=10944, moe_intermediate_size=1408, n_shared_experts=2, n_routed_experts=64,
                      n_activated_experts=6, first_k_dense_replace=1, aux_loss_alpha=0.001, balance_scope="sequence",
                      init_std=0.006),
    "paper-145b": dict(vocab_size=102400, hidden_size=4096, n_layers=62, n_heads=32, head_dim=128, max_seq_len=4096,
                       intermediate_size=22528, moe_intermediate_size=1408, n_shared_experts=4,
                       n_routed_experts=128, n_activated_experts=12, first_k_dense_replace=1, aux_loss_alpha=0.003,
                       device_balance_alpha=0.05, n_devices=4, init_std=0.006),
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
