"""YaRN context extension (Peng et al. 2023), computed exactly as transformers' _compute_yarn_parameters
(truncate=True) and DeepSeek-V2/V3's attention, so converted checkpoints give identical logits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dsmoe.config import ModelConfig


def yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    """Attention temperature factor sqrt(1/t) = 0.1 * mscale * ln(s) + 1 (YaRN Sec. 3.4); 1 when s <= 1."""
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def linear_ramp(low: float, high: float, n: int) -> torch.Tensor:
    """0 up to index `low`, 1 from index `high`, linear in between (YaRN's gamma ramp)."""
    if low == high:
        high += 0.001  # avoid dividing by zero, as transformers does
    return ((torch.arange(n, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)


@dataclass(frozen=True)
class YarnScaling:
    """The rope_* YaRN fields of a ModelConfig (see its docstring)."""

    factor: float
    original_max_position_embeddings: int
    beta_fast: float
    beta_slow: float
    mscale: float
    mscale_all_dim: float

    @classmethod
    def from_config(cls, config: ModelConfig) -> YarnScaling | None:
        if config.rope_scaling_type != "yarn":
            return None
        return cls(config.rope_scaling_factor, config.rope_original_max_position_embeddings, config.rope_beta_fast,
                   config.rope_beta_slow, config.rope_mscale, config.rope_mscale_all_dim)

    def correction_range(self, dim: int, base: float) -> tuple[float, float]:
        """Pair indices that turn beta_fast and beta_slow times over the original context (YaRN Sec. 3.2)."""
        def pair_index(rotations: float) -> float:
            wavelengths = self.original_max_position_embeddings / (rotations * 2 * math.pi)
            return dim * math.log(wavelengths) / (2 * math.log(base))

        return max(math.floor(pair_index(self.beta_fast)), 0), min(math.ceil(pair_index(self.beta_slow)), dim - 1)

    def inv_freq(self, dim: int, base: float) -> torch.Tensor:
        """"NTK-by-parts" (YaRN Sec. 3.2): high frequencies kept, low ones divided by s, a ramp between."""
        pos_freqs = base ** (torch.arange(0, dim, 2).to(dtype=torch.float) / dim)
        extrapolation, interpolation = 1.0 / pos_freqs, 1.0 / (self.factor * pos_freqs)
        keep = 1 - linear_ramp(*self.correction_range(dim, base), dim // 2)
        return interpolation * (1 - keep) + extrapolation * keep

    @property
    def attention_factor(self) -> float:
        """Multiplier of cos and sin; DeepSeek's ratio of two mscales when both are set."""
        if self.mscale and self.mscale_all_dim:
            return float(yarn_mscale(self.factor, self.mscale) / yarn_mscale(self.factor, self.mscale_all_dim))
        return yarn_mscale(self.factor)


def softmax_scale(config: ModelConfig, qk_head_dim: int) -> float:
    """1/sqrt(d_qk), times mscale(s, mscale_all_dim)^2 under YaRN as DeepSeek-V2/V3's attention does."""
    scale = qk_head_dim ** -0.5
    yarn = YarnScaling.from_config(config)
    if yarn is not None and yarn.mscale_all_dim:
        mscale = yarn_mscale(yarn.factor, yarn.mscale_all_dim)
        scale = scale * mscale * mscale
    return scale
