"""Expert-computation kernels: the fused grouped_mm op with its plain-loop twin and the choice between them
(fused.py), and the pairwise path of compiled decoding (pairwise.py). They take plain tensors (pairs sorted by
expert); the MoE layer (dsmoe.model.moe) decides which one runs."""

from dsmoe.kernels.fused import fused_grouped_experts, grouped_experts, loop_experts, sort_by_expert, use_grouped_mm
from dsmoe.kernels.pairwise import pairwise_experts, use_pairwise

__all__ = ["fused_grouped_experts", "grouped_experts", "loop_experts", "pairwise_experts", "sort_by_expert",
           "use_grouped_mm", "use_pairwise"]
