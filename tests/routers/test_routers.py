"""Each router's output contract, and each router's own routing rule against a reference."""

import math

import pytest
import torch

from dsmoe import ModelConfig
from dsmoe.model.init import init_weights
from dsmoe.routers import ROUTERS, Routing, SoftRouting

HIDDEN, VOCAB, BATCH, SEQ_LEN = 32, 64, 2, 8
N_TOKENS = BATCH * SEQ_LEN
TOP_K = {"switch": 1, "gshard": 2}
PAIR_ROUTERS = [name for name in ROUTERS if name != "soft_moe"]  # soft_moe mixes tokens into slots instead


def router_config(name: str, **changes) -> ModelConfig:
    values = dict(vocab_size=VOCAB, hidden_size=HIDDEN, n_layers=1, n_heads=2, max_seq_len=SEQ_LEN,
                  n_routed_experts=8, n_activated_experts=TOP_K.get(name, 2), router=name)
    return ModelConfig(**{**values, **changes})


def build_router(name: str, seed: int = 0, **changes):
    torch.manual_seed(seed)
    router = ROUTERS[name](router_config(name, **changes))
    init_weights(router, std=0.5)
    return router


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(N_TOKENS, HIDDEN, generator=generator), torch.randint(0, VOCAB, (N_TOKENS,), generator=generator)


def route(router, x_TD=None, token_ids_T=None):
    default_x, default_ids = batch()
    return router(default_x if x_TD is None else x_TD, default_ids if token_ids_T is None else token_ids_T, BATCH)


def chosen_TK(routing: Routing, top_k: int) -> torch.Tensor:
    """[T, K] expert indices of a dropless top-k routing (pairs are token-major)."""
    return routing.expert_index_S.reshape(-1, top_k)


@pytest.mark.parametrize("name", PAIR_ROUTERS)
def test_pairs_are_in_range_with_finite_weights(name):
    """Token and expert indices of every pair are valid and every weight is finite."""
    routing = route(build_router(name).train())
    assert isinstance(routing, Routing)
    assert routing.token_index_S.numel() == routing.expert_index_S.numel() == routing.weight_S.numel() > 0
    assert 0 <= routing.token_index_S.min() and routing.token_index_S.max() < N_TOKENS
    assert 0 <= routing.expert_index_S.min() and routing.expert_index_S.max() < 8
    assert torch.isfinite(routing.weight_S).all()


@pytest.mark.parametrize("name", PAIR_ROUTERS)
def test_tokens_per_expert_counts_the_pairs(name):
    """stats.tokens_per_expert is the per-expert count of the returned pairs (so it sums to their number)."""
    routing = route(build_router(name).train())
    assert torch.equal(routing.stats.tokens_per_expert, torch.bincount(routing.expert_index_S, minlength=8))


def test_softmax_topk_normalised_weights_sum_to_one():
    """norm_topk_prob=True: each token's top-k weights sum to 1."""
    routing = route(build_router("softmax_topk", norm_topk_prob=True).eval())
    torch.testing.assert_close(routing.weight_S.reshape(-1, 2).sum(-1), torch.ones(N_TOKENS))


def test_softmax_topk_unnormalised_weights_are_softmax_probs():
    """norm_topk_prob=False: each weight is the softmax probability of the chosen expert."""
    router = build_router("softmax_topk", norm_topk_prob=False).eval()
    x_TD, _ = batch()
    routing = route(router, x_TD)
    probs_TE = (x_TD @ router.weight.detach().t()).softmax(dim=-1)
    expected = probs_TE[routing.token_index_S, routing.expert_index_S]
    torch.testing.assert_close(routing.weight_S, expected)
    assert torch.equal(chosen_TK(routing, 2).sort(-1).values, probs_TE.topk(2, dim=-1).indices.sort(-1).values)


@pytest.mark.parametrize("norm_topk_prob", [False, True])
def test_routed_scaling_factor_multiplies_weights(norm_topk_prob):
    """routed_scaling_factor=2.5 scales every weight by 2.5 and leaves the choices alone."""
    plain = route(build_router("softmax_topk", norm_topk_prob=norm_topk_prob).eval())
    scaled = route(build_router("softmax_topk", norm_topk_prob=norm_topk_prob, routed_scaling_factor=2.5).eval())
    assert torch.equal(plain.expert_index_S, scaled.expert_index_S)
    torch.testing.assert_close(scaled.weight_S, 2.5 * plain.weight_S)


def deepseek_v3_pair(bias: torch.Tensor):
    """Our sigmoid_topk and transformers' DeepseekV3TopkRouter with the same gate weight and bias."""
    changes = dict(n_routed_experts=16, n_activated_experts=4, n_group=4, topk_group=2, norm_topk_prob=True,
                   routed_scaling_factor=2.5)
    ours = build_router("sigmoid_topk", **changes).eval()
    ours.expert_bias.copy_(bias)
    deepseek_v3 = pytest.importorskip("transformers.models.deepseek_v3.modeling_deepseek_v3")
    hf_config = deepseek_v3.DeepseekV3Config(hidden_size=HIDDEN, n_routed_experts=16, num_experts_per_tok=4, n_group=4,
                                 topk_group=2, norm_topk_prob=True, routed_scaling_factor=2.5)
    theirs = deepseek_v3.DeepseekV3TopkRouter(hf_config)
    with torch.no_grad():
        theirs.weight.copy_(ours.weight)
        theirs.e_score_correction_bias.copy_(bias)
    return ours, theirs


def test_sigmoid_topk_matches_transformers_deepseek_v3_router():
    """Same chosen expert sets and same weights as DeepseekV3TopkRouter (groups, bias, norm, scaling 2.5)."""
    ours, theirs = deepseek_v3_pair(0.3 * torch.randn(16, generator=torch.Generator().manual_seed(7)))
    x_TD, ids_T = batch()
    routing = ours(x_TD, ids_T, BATCH)
    with torch.no_grad():
        _, their_weights_TK, their_indices_TK = theirs(x_TD)
    our_order = chosen_TK(routing, 4).sort(-1)
    their_order = their_indices_TK.sort(-1)
    assert torch.equal(our_order.values, their_order.values)
    torch.testing.assert_close(routing.weight_S.reshape(-1, 4).gather(1, our_order.indices),
                               their_weights_TK.gather(1, their_order.indices))


def test_sigmoid_topk_bias_changes_choices():
    """A large bias on one expert makes every token choose it."""
    router = build_router("sigmoid_topk").eval()
    before = chosen_TK(route(router), 2)
    router.expert_bias[3] = 10.0
    after = chosen_TK(route(router), 2)
    assert not (before == 3).any(dim=1).all()
    assert (after == 3).any(dim=1).all()


def test_sigmoid_topk_weights_use_unbiased_scores():
    """With a bias set, weights are the chosen experts' unbiased sigmoid scores (normalised, scaled)."""
    router = build_router("sigmoid_topk", norm_topk_prob=True, routed_scaling_factor=2.5).eval()
    router.expert_bias.copy_(torch.linspace(-1, 1, 8))
    x_TD, _ = batch()
    routing = route(router, x_TD)
    scores_TK = (x_TD @ router.weight.detach().t()).sigmoid().gather(1, chosen_TK(routing, 2))
    torch.testing.assert_close(routing.weight_S.reshape(-1, 2), 2.5 * scores_TK / scores_TK.sum(-1, keepdim=True))


@pytest.mark.parametrize("name", list(ROUTERS))
def test_router_math_is_fp32_under_bf16_autocast(name):
    """Under CPU bf16 autocast a router returns fp32 weights identical to its routing without autocast."""
    router = build_router(name).eval()
    x_TD, ids_T = batch()
    reference = router(x_TD, ids_T, BATCH)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        routing = router(x_TD, ids_T, BATCH)
    if isinstance(routing, SoftRouting):
        assert routing.dispatch_BLX.dtype == routing.combine_BLX.dtype == torch.float32
        assert torch.equal(routing.dispatch_BLX, reference.dispatch_BLX)
        assert torch.equal(routing.combine_BLX, reference.combine_BLX)
    else:
        assert routing.weight_S.dtype == torch.float32
        assert torch.equal(routing.expert_index_S, reference.expert_index_S)
        assert torch.equal(routing.weight_S, reference.weight_S)


def plain_capacity_routing(probs_TE: torch.Tensor, top_k: int, capacity: int) -> set[tuple[int, int]]:
    """Kept (token, expert) pairs: all first choices in token order, then all second choices."""
    choices = probs_TE.topk(top_k, dim=-1).indices.tolist()
    load = [0] * probs_TE.shape[1]
    kept = set()
    for k in range(top_k):
        for token, row in enumerate(choices):
            if load[row[k]] < capacity:
                load[row[k]] += 1
                kept.add((token, row[k]))
    return kept


@pytest.mark.parametrize("name", ["switch", "gshard"])
def test_capacity_drops_follow_priority_rule(name):
    """capacity_factor=0.5: kept pairs and the dropped count (chosen - kept) match a plain priority loop."""
    router = build_router(name, n_routed_experts=4, capacity_factor=0.5).eval()  # eval: no gshard random drop
    x_TD, _ = batch()
    routing = route(router, x_TD)
    top_k = TOP_K[name]
    capacity = math.ceil(0.5 * N_TOKENS * top_k / 4)
    kept = plain_capacity_routing((x_TD @ router.weight.detach().t()).softmax(-1), top_k, capacity)
    assert set(zip(routing.token_index_S.tolist(), routing.expert_index_S.tolist())) == kept
    assert routing.stats.dropped_tokens.item() == N_TOKENS * top_k - len(kept) > 0


@pytest.mark.parametrize("name", ["switch", "gshard"])
def test_capacity_is_never_exceeded(name):
    """No expert receives more than ceil(capacity_factor * T * k / E) pairs, in training mode too."""
    router = build_router(name, n_routed_experts=4, capacity_factor=0.5).train()
    routing = route(router)
    capacity = math.ceil(0.5 * N_TOKENS * TOP_K[name] / 4)
    assert torch.bincount(routing.expert_index_S, minlength=4).max() <= capacity


def test_hash_router_ignores_hidden_states():
    """Two different hidden-state batches with the same token ids are routed identically."""
    router = build_router("hash")
    _, ids_T = batch()
    first = route(router, torch.randn(N_TOKENS, HIDDEN), ids_T)
    second = route(router, torch.randn(N_TOKENS, HIDDEN), ids_T)
    assert torch.equal(first.expert_index_S, second.expert_index_S)
    assert torch.equal(first.weight_S, second.weight_S)


def test_hash_router_same_table_in_fresh_models():
    """Two routers built under different torch seeds send every token id to the same experts."""
    ids_T = torch.arange(VOCAB)
    x_TD = torch.zeros(VOCAB, HIDDEN)
    first = build_router("hash", seed=0)(x_TD, ids_T, 1)
    second = build_router("hash", seed=99)(x_TD, ids_T, 1)
    assert torch.equal(first.expert_index_S, second.expert_index_S)


def test_hash_router_same_id_same_experts():
    """Every occurrence of a token id, wherever it sits in the batch, gets the same K distinct experts."""
    ids_T = torch.tensor([5, 9, 5, 1, 9, 5, 1, 0] * 2)
    chosen = chosen_TK(route(build_router("hash"), token_ids_T=ids_T), 2)
    for token_id in ids_T.unique():
        rows = chosen[ids_T == token_id]
        assert torch.equal(rows, rows[:1].expand_as(rows))
    assert (chosen[:, 0] != chosen[:, 1]).all()


def test_expert_choice_each_expert_takes_its_top_c_tokens():
    """Each expert gets exactly C = ceil(cf * T * k / E) tokens: its C highest-probability ones."""
    router = build_router("expert_choice", capacity_factor=1.0).eval()
    x_TD, _ = batch()
    routing = route(router, x_TD)
    capacity = math.ceil(1.0 * N_TOKENS * 2 / 8)
    probs_TE = (x_TD @ router.weight.detach().t()).softmax(-1)
    for expert in range(8):
        tokens = routing.token_index_S[routing.expert_index_S == expert]
        assert set(tokens.tolist()) == set(probs_TE[:, expert].topk(capacity).indices.tolist())


def test_expert_choice_dropped_tokens_are_tokens_no_expert_chose():
    """stats.dropped_tokens counts the tokens that appear in no expert's choice."""
    routing = route(build_router("expert_choice", capacity_factor=0.5).eval())
    unpicked = N_TOKENS - len(set(routing.token_index_S.tolist()))
    assert routing.stats.dropped_tokens.item() == unpicked > 0


def test_soft_moe_dispatch_sums_to_one_over_tokens():
    """Every slot's dispatch weights form a distribution over its sequence's tokens (Soft MoE Eq. 1)."""
    routing = route(build_router("soft_moe"))
    n_slots = 8 * router_config("soft_moe").slots_per_expert
    assert routing.dispatch_BLX.shape == (BATCH, SEQ_LEN, n_slots)
    torch.testing.assert_close(routing.dispatch_BLX.sum(dim=1), torch.ones(BATCH, n_slots))


def test_soft_moe_combine_sums_to_one_over_slots():
    """Every token's combine weights form a distribution over the slots (Soft MoE Eq. 3)."""
    routing = route(build_router("soft_moe"))
    torch.testing.assert_close(routing.combine_BLX.sum(dim=2), torch.ones(BATCH, SEQ_LEN))


def test_soft_moe_normalised_logits_are_scaled_cosines():
    """soft_moe_normalise (Puigcerver et al. 2023 Sec. 2.3): logit(t, slot) = scale * cos(x_t, phi_slot), scale a
    learned scalar starting at 1, so rescaling the tokens changes nothing."""
    router = build_router("soft_moe", soft_moe_normalise=True)
    assert router.scale.item() == 1.0
    with torch.no_grad():
        router.scale.fill_(3.0)
    x_TD, _ = batch()
    expected = 3.0 * torch.nn.functional.cosine_similarity(x_TD[:, None], router.weight.detach()[None], dim=-1)
    torch.testing.assert_close(router.logits(x_TD), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(route(router, 10 * x_TD).dispatch_BLX, route(router, x_TD).dispatch_BLX)
    route(router).combine_BLX.square().sum().backward()
    assert router.scale.grad is not None and router.scale.grad.item() != 0


def test_noisy_topk_starts_with_zero_gate_and_noise_weights():
    """Shazeer et al. 2017 App. A: W_g = W_noise = 0, "no signal and some uniformly-distributed noise", whatever
    init_std; so at the start every expert is equally likely and only the training noise chooses."""
    router = build_router("noisy_topk")
    assert not router.weight.any() and not router.noise_weight.any()
    first, second = route(router.train()), route(router.train())
    assert not torch.equal(first.expert_index_S, second.expert_index_S)


def test_noisy_topk_is_deterministic_in_eval():
    """In eval mode no noise is drawn: two calls give the same routing."""
    router = build_router("noisy_topk").eval()
    first, second = route(router), route(router)
    assert torch.equal(first.expert_index_S, second.expert_index_S)
    assert torch.equal(first.weight_S, second.weight_S)


def test_noisy_topk_is_noisy_in_train():
    """In training mode fresh noise is drawn each call: two calls give different weights."""
    router = build_router("noisy_topk").train()
    torch.manual_seed(0)
    first, second = route(router), route(router)
    assert not torch.equal(first.weight_S, second.weight_S)
