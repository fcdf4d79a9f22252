"""KV cache for incremental decoding: per layer, two preallocated buffers and a shared length."""

from __future__ import annotations

import torch


class KVCache:
    """Holds two streams, keys [B, H, max_len, X] and values [B, H, max_len, Y], for every layer; `length` tokens
    are valid.

    Multi-head attention stores keys and values [B, H_kv, max_len, head_dim] (X = Y = J). Multi-head latent
    attention stores only what DeepSeek-V2 Sec. 2.1.2-2.1.3 caches: the shared RoPE key [B, 1, max_len, U] as the
    keys and the compressed latent c_kv [B, 1, max_len, C] as the values (X = U, Y = C). The model
    advances `length` once per forward, after all layers have written their entries.

    real_BM [B, max_len] marks which cached positions hold real tokens in a padded batch; None until a
    forward passes an attention mask (every position real).
    """

    def __init__(self, n_layers: int, max_len: int):
        self.max_len = max_len
        self.length = 0
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers
        self.real_BM: torch.Tensor | None = None

    def new_length(self, n_new: int) -> int:
        """length + n_new, refused past max_len."""
        new_len = self.length + n_new
        if new_len > self.max_len:
            raise ValueError(f"KV cache holds at most max_len={self.max_len} tokens; asked for {new_len}")
        return new_len

    def rollback(self, length: int) -> None:
        """Forget the entries past `length` (speculative decoding drops rejected tokens); later writes overwrite
        them, the real-token marks included."""
        if not 0 <= length <= self.length:
            raise ValueError(f"rollback length={length} must be in [0, current length={self.length}]")
        self.length = length

    def record_real(self, real_BL: torch.Tensor) -> torch.Tensor:
        """Mark which of positions [length, length + L) are real tokens; return the marks of all [B, length + L]."""
        new_len = self.new_length(real_BL.shape[1])
        if self.real_BM is None:
            self.real_BM = real_BL.new_ones(real_BL.shape[0], self.max_len)
        self.real_BM[:, self.length:new_len] = real_BL
        return self.real_BM[:, :new_len]

    def update(self, layer: int, k_BHLX: torch.Tensor, v_BHLY: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's keys/values at positions [length, length + L); return all valid ones."""
        new_len = self.new_length(k_BHLX.shape[2])
        if self.keys[layer] is None:
            self.keys[layer] = k_BHLX.new_zeros(*k_BHLX.shape[:2], self.max_len, k_BHLX.shape[3])
            self.values[layer] = v_BHLY.new_zeros(*v_BHLY.shape[:2], self.max_len, v_BHLY.shape[3])
        self.keys[layer][:, :, self.length:new_len] = k_BHLX
        self.values[layer][:, :, self.length:new_len] = v_BHLY
        return self.keys[layer][:, :, :new_len], self.values[layer][:, :, :new_len]
