"""dsmoe: DeepSeekMoE-style Mixture-of-Experts language models, exact, fast and inspectable.

Tensor names end in their shape (`x_TD`: tokens by hidden width); docs/CONVENTIONS.md is the legend of the letters.
"""

from dsmoe import presets
from dsmoe.compat import DeepSeekMoEConfig, DeepSeekMoEModel, HybridMoETransformerLM, MoETransformerLM
from dsmoe.config import ModelConfig
from dsmoe.model import (DeepSeekMoEForCausalLM, KVCache, ModelOutput, ParamCount, apply_activation_checkpointing,
                         count_params)
from dsmoe.routers import ROUTERS, install_router_updates

__version__ = "0.1.0"

__all__ = ["DeepSeekMoEConfig", "DeepSeekMoEForCausalLM", "DeepSeekMoEModel", "HybridMoETransformerLM", "KVCache",
           "MoETransformerLM", "ModelConfig", "ModelOutput", "ParamCount", "ROUTERS", "apply_activation_checkpointing",
           "count_params", "install_router_updates", "presets"]
