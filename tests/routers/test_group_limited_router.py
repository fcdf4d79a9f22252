"""A group-limited router added in one file (this one) plus one registry line: its RouterTraits say it limits each
token to topk_group of n_group expert groups (scored by DeepSeek-V3's top-K_r/M sum unless group_score says
otherwise), routes exactly two experts per token and renormalises their weights. Config validation, the defaults
of group_score and norm_topk_prob, and the model read those traits; what they exclude is refused, naming it."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.registry import ROUTERS, RouterTraits
from dsmoe.routers import Router, Routing
from dsmoe.routers.softmax_topk import limit_to_groups, normalise_and_scale, token_choice_routing
from train.tiny import MODEL, one_torch_thread, tiny_model  # noqa: F401

NAME = "softplus_groups"
GROUPED = dict(n_routed_experts=8, n_activated_experts=2, n_group=4, topk_group=1)  # two experts per group


class SoftplusGroupRouter(Router):
    """s_{i,t} = Softplus(u_t^T e_i), positive and unbounded; each token takes its top-2 experts inside its best
    group(s), weighted by their s renormalised to sum to 1 (norm_topk_prob's default here)."""

    traits = RouterTraits(fixed_top_k=2, group_score="topk_sum", renormalises=True)

    def forward(self, x_TD, token_ids_T, batch_size) -> Routing:
        logits_TE = self.logits(x_TD)
        scores_TE = nn.functional.softplus(logits_TE)
        cfg = self.config
        choice_TE = limit_to_groups(self.without_disabled(scores_TE), cfg.n_group, cfg.topk_group,
                                    cfg.group_score_size)
        experts_TK = choice_TE.topk(self.top_k, dim=-1).indices
        weights_TK = normalise_and_scale(scores_TE.gather(1, experts_TK), cfg)
        probs_TE = scores_TE / scores_TE.sum(dim=-1, keepdim=True)
        return token_choice_routing(cfg, experts_TK, weights_TK, probs_TE, logits_TE, batch_size, self.training)


@pytest.fixture(autouse=True)
def registered():
    ROUTERS.register(NAME, SoftplusGroupRouter)
    yield
    ROUTERS.unregister(NAME)


def config(**changes) -> ModelConfig:
    return ModelConfig(**{**MODEL, **GROUPED, "router": NAME, **changes})


def test_the_config_accepts_its_groups_and_takes_its_defaults():
    cfg = config()
    assert (cfg.n_group, cfg.group_score_rule, cfg.group_score_size) == (4, "topk_sum", 2)
    assert cfg.norm_topk_prob is True and cfg.to_dict()["norm_topk_prob"] is None
    assert dataclasses.replace(cfg, router="softmax_topk").norm_topk_prob is False  # derived again, from its traits


@pytest.mark.parametrize("changes, message", [
    (dict(n_activated_experts=3), "n_activated_experts=3 must be 2 for router='softplus_groups' (top-2 routing)"),
    (dict(device_capacity_factor=1.0), "device_capacity_factor=1.0 needs a router with device-level token dropping "
                                       "(softmax_topk, sigmoid_topk, sqrtsoftplus_topk), not 'softplus_groups'"),
], ids=["fixed_top_k", "device_dropping"])
def test_the_config_refuses_what_its_traits_exclude(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config(**changes)


def test_it_is_named_among_the_group_limited_routers_when_another_router_asks_for_groups():
    with pytest.raises(ValueError, match=re.escape("n_group=4 > 1 needs a group-limited router (softmax_topk, "
                                                   "sigmoid_topk, sqrtsoftplus_topk, softplus_groups), not 'hash'")):
        config(router="hash")


def test_the_model_trains_it_and_each_token_stays_inside_its_group():
    model = tiny_model(**GROUPED, router=NAME).train()
    routings = []
    for module in model.modules():
        if isinstance(module, SoftplusGroupRouter):
            module.register_forward_hook(lambda router, args, routing: routings.append(routing))
    tokens = torch.randint(0, MODEL["vocab_size"], (2, 16))
    output = model(tokens, labels=tokens)
    output.loss.backward()
    assert torch.isfinite(output.loss) and "expert_balance" in output.aux_losses
    assert len(routings) == len(model.config.moe_layers) > 0
    for routing in routings:
        group_TK = routing.expert_index_S.view(-1, 2) // 2  # topk_group=1: both experts of a token in one group
        assert torch.equal(group_TK[:, 0], group_TK[:, 1])
        torch.testing.assert_close(routing.weight_S.view(-1, 2).sum(-1), torch.ones(group_TK.shape[0]))
    gates = [module.weight.grad for module in model.modules() if isinstance(module, SoftplusGroupRouter)]
    assert all(grad is not None and grad.abs().sum() > 0 for grad in gates)
