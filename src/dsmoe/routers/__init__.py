"""Routers by name. Adding one: write its class in a file here and add one line to ROUTERS."""

from dsmoe.routers.base import Router, RouterStats, Routing, SoftRouting
from dsmoe.routers.bias_update import install_bias_update, update_expert_biases
from dsmoe.routers.capacity import GShardRouter, SwitchRouter
from dsmoe.routers.expert_choice import ExpertChoiceRouter
from dsmoe.routers.hash_router import HashRouter
from dsmoe.routers.noisy_topk import NoisyTopKRouter
from dsmoe.routers.sigmoid_topk import SigmoidTopKRouter
from dsmoe.routers.soft_moe import SoftMoERouter
from dsmoe.routers.softmax_topk import SoftmaxTopKRouter

ROUTERS: dict[str, type[Router]] = {
    "softmax_topk": SoftmaxTopKRouter,
    "sigmoid_topk": SigmoidTopKRouter,
    "noisy_topk": NoisyTopKRouter,
    "switch": SwitchRouter,
    "gshard": GShardRouter,
    "hash": HashRouter,
    "expert_choice": ExpertChoiceRouter,
    "soft_moe": SoftMoERouter,
}

__all__ = ["ROUTERS", "Router", "RouterStats", "Routing", "SoftRouting", "install_bias_update",
           "update_expert_biases"]
