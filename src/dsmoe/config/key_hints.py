"""What an unknown config key probably meant: a key of the same spelling (difflib), or of the same meaning under the
name other codebases give it (nanoGPT, transformers, Megatron)."""

from __future__ import annotations

import dataclasses
import difflib

from dsmoe.config.sections import SECTIONS

# another codebase's name -> ours, "section.key"; only names that mean the same thing, or nearly (epochs -> steps)
SYNONYMS = {
    "learning_rate": "train.lr", "max_lr": "train.lr", "peak_lr": "train.lr",
    "lr_min": "train.min_lr_ratio", "min_lr": "train.min_lr_ratio",
    "epoch": "train.steps", "epochs": "train.steps", "max_steps": "train.steps", "max_iters": "train.steps",
    "warmup": "train.warmup_steps", "warmup_iters": "train.warmup_steps",
    "micro_batch_size": "train.batch_size", "gradient_accumulation_steps": "train.grad_accum",
    "max_grad_norm": "train.grad_clip", "clip_grad": "train.grad_clip",
    "time_budget": "train.time_budget_min", "minutes": "train.time_budget_min",
    "num_experts": "model.n_routed_experts", "n_experts": "model.n_routed_experts",
    "top_k": "model.n_activated_experts", "num_experts_per_tok": "model.n_activated_experts",
    "num_shared_experts": "model.n_shared_experts",
    "d_model": "model.hidden_size", "n_embd": "model.hidden_size", "dim": "model.hidden_size",
    "n_layer": "model.n_layers", "num_layers": "model.n_layers", "num_hidden_layers": "model.n_layers",
    "n_head": "model.n_heads", "num_attention_heads": "model.n_heads", "num_key_value_heads": "model.n_kv_heads",
    "d_ff": "model.intermediate_size", "ffn_dim": "model.intermediate_size",
    "max_position_embeddings": "model.max_seq_len",
    "router_aux_loss_coef": "model.aux_loss_alpha", "router_z_loss_coef": "model.z_loss_coef",
    "block_size": "data.seq_len", "seq_length": "data.seq_len", "dataset": "data.path",
}


def keys(section: str) -> list[str]:
    return [field.name for field in dataclasses.fields(SECTIONS[section])]


def suggestions(section: str, key: str) -> list[str]:
    """'section.key' names the unknown `key` of `section` may have meant: by meaning first, then by spelling."""
    by_meaning = [SYNONYMS[key.lower()]] if key.lower() in SYNONYMS else []
    by_spelling = [f"{section}.{close}" for close in difflib.get_close_matches(key, keys(section), n=2)]
    return list(dict.fromkeys(by_meaning + by_spelling))


def unknown_key_message(section: str, key: str) -> str:
    """`unknown key train.learning_rate; did you mean train.lr?`, or where to find every key."""
    names = suggestions(section, key)
    hint = f"did you mean {' or '.join(names)}?" if names else f"`dsmoe config` lists every key of [{section}]"
    return f"unknown key {section}.{key}; {hint}"
