"""DeepSeek-V4's hash layers (n_hash_layers): the first MoE layers choose by a frozen token-id table, balanced over
the vocabulary and saved with the model, and the learned gate weights the chosen experts."""

import pytest
import torch

from dsmoe import DeepSeekMoEForCausalLM, ModelConfig
from dsmoe.routers.affinity import AFFINITY_SCORES
from dsmoe.routers.hash_gate import HashGateRouter, balanced_table

VOCAB, HIDDEN, EXPERTS, TOP_K = 64, 16, 8, 2


def config(**changes) -> ModelConfig:
    values = dict(vocab_size=VOCAB, hidden_size=HIDDEN, n_layers=4, n_heads=2, max_seq_len=16, intermediate_size=32,
                  moe_intermediate_size=8, n_routed_experts=EXPERTS, n_activated_experts=TOP_K,
                  router="sqrtsoftplus_topk", n_hash_layers=1)
    return ModelConfig(**{**values, **changes})


def hash_router(seed: int = 0, layer_idx: int = 0, **changes) -> HashGateRouter:
    torch.manual_seed(seed)
    router = HashGateRouter(config(**changes), layer_idx)
    router.init_weights(std=0.5)
    return router.eval()


@pytest.mark.parametrize("vocab, experts, top_k", [(64, 8, 2), (100, 7, 3), (13, 6, 4), (10, 5, 5), (2048, 16, 4)])
def test_table_gives_distinct_experts_balanced_over_the_vocabulary(vocab, experts, top_k):
    table_VK = balanced_table(vocab, experts, top_k, seed=0)
    assert table_VK.shape == (vocab, top_k) and table_VK.dtype == torch.long
    assert all(len(set(row)) == top_k for row in table_VK.tolist())
    counts_E = torch.bincount(table_VK.flatten(), minlength=experts)
    assert counts_E.max() - counts_E.min() <= 1


def test_table_is_the_same_in_fresh_models_and_differs_between_layers():
    assert torch.equal(hash_router(seed=0).tid2eid, hash_router(seed=99).tid2eid)
    assert not torch.equal(hash_router(layer_idx=0).tid2eid, hash_router(layer_idx=1).tid2eid)


@pytest.mark.parametrize("router, norm_topk_prob", [("sqrtsoftplus_topk", True), ("sigmoid_topk", False),
                                                    ("softmax_topk", False)])
def test_gate_scores_weight_the_table_experts(router, norm_topk_prob):
    """Pairs are the table's experts; weights the config router's scores there, renormalised if asked, scaled."""
    gate = hash_router(router=router, norm_topk_prob=norm_topk_prob, routed_scaling_factor=1.5)
    generator = torch.Generator().manual_seed(1)
    x_TD, ids_T = torch.randn(10, HIDDEN, generator=generator), torch.randint(0, VOCAB, (10,), generator=generator)
    routing = gate(x_TD, ids_T, 1)
    scoring_func = {"sqrtsoftplus_topk": "sqrtsoftplus", "sigmoid_topk": "sigmoid", "softmax_topk": "softmax"}[router]
    scores_TK = AFFINITY_SCORES[scoring_func](x_TD @ gate.weight.detach().T).gather(1, gate.tid2eid[ids_T])
    if norm_topk_prob:
        scores_TK = scores_TK / scores_TK.sum(dim=-1, keepdim=True)
    assert torch.equal(routing.expert_index_S.view(-1, TOP_K), gate.tid2eid[ids_T])
    torch.testing.assert_close(routing.weight_S.view(-1, TOP_K), 1.5 * scores_TK)


def test_hidden_states_change_the_weights_not_the_choice():
    gate, ids_T = hash_router(), torch.arange(VOCAB)
    first, second = gate(torch.randn(VOCAB, HIDDEN), ids_T, 1), gate(torch.randn(VOCAB, HIDDEN), ids_T, 1)
    assert torch.equal(first.expert_index_S, second.expert_index_S)
    assert not torch.equal(first.weight_S, second.weight_S)


def test_gate_learns_and_no_loss_or_step_statistic_is_added():
    gate = hash_router().train()
    routing = gate(torch.randn(6, HIDDEN), torch.arange(6), 1)
    routing.weight_S.square().sum().backward()
    assert gate.weight.grad.abs().sum() > 0 and routing.aux_losses == {} and gate.pending_statistics() == []
    assert torch.equal(routing.stats.tokens_per_expert, torch.bincount(routing.expert_index_S, minlength=EXPERTS))


def test_only_the_first_n_hash_layers_moe_layers_route_by_the_table():
    model = DeepSeekMoEForCausalLM(config(first_k_dense_replace=1, n_hash_layers=2))
    hashed = [i for i, block in enumerate(model.layers)
              if block.is_moe and isinstance(block.ffn.router, HashGateRouter)]
    assert hashed == model.config.hash_layers == [1, 2]


def test_the_table_is_saved_and_loaded_with_the_model():
    model = DeepSeekMoEForCausalLM(config())
    state = model.state_dict()
    assert "layers.0.ffn.router.tid2eid" in state
    state["layers.0.ffn.router.tid2eid"] = state["layers.0.ffn.router.tid2eid"].roll(1, dims=1)
    other = DeepSeekMoEForCausalLM(config())
    other.load_state_dict(state)
    assert torch.equal(other.layers[0].ffn.router.tid2eid, state["layers.0.ffn.router.tid2eid"])


def test_disabling_experts_is_refused():
    with pytest.raises(ValueError, match="cannot disable experts .* fixed token-id table"):
        hash_router().disable_experts([0])
