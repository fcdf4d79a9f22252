"""DeepSeek-V4's router: DeepSeek-V3's (sigmoid_topk) with sqrt(softplus) affinities."""

from __future__ import annotations

from dsmoe.registry import ROUTERS
from dsmoe.routers.sigmoid_topk import SigmoidTopKRouter


class SqrtSoftplusTopKRouter(SigmoidTopKRouter):
    """s_{i,t} = sqrt(Softplus(u_t^T e_i)) (transformers' deepseek_v4 scoring_func="sqrtsoftplus"); the rest is V3's:
    select TopK(s + b), gate with the unbiased s renormalised over the chosen experts (norm_topk_prob, on by default)
    and times routed_scaling_factor, the bias b updated after each optimizer step without a loss (Sec. 2.1.2 of
    DeepSeek-V3). Its tensors are V3's and V4's names (gate.weight, gate.e_score_correction_bias)."""

    traits = ROUTERS.traits("sqrtsoftplus_topk")
