"""The model: norms, RoPE (and YaRN), attention (MHA and MLA), the MoE layer (with its dispatcher, routed experts
and the SwiGLU FFN), decoder block, multi-token prediction, language model."""

from dsmoe.model.accounting import ParamCount, count_module_params, count_params
from dsmoe.model.kv_cache import KVCache
from dsmoe.model.moe import MoE
from dsmoe.model.output import ModelOutput
from dsmoe.model.transformer import DeepSeekMoEForCausalLM, apply_activation_checkpointing

__all__ = ["DeepSeekMoEForCausalLM", "KVCache", "MoE", "ModelOutput", "ParamCount", "apply_activation_checkpointing",
           "count_module_params", "count_params"]
