"""Device-level token dropping (DeepSeek-V2 Sec. 2.2.4) against hand-computed cases and a plain loop."""

import pytest
import torch

from dsmoe import ModelConfig
from dsmoe.model.init import init_weights
from dsmoe.routers import ROUTERS, Routing
from dsmoe.routers.base import topk_pairs
from dsmoe.routers.device_dropping import drop_over_device_capacity, keep_within_capacity, never_dropped_sequences

# 4 tokens (2 sequences of 2), K' = 2, experts {0, 1} on device 0 and {2, 3} on device 1. Device 0 gets 6 of
# the 8 pairs; its capacity is ceil(1.0 * 8 / 2) = 4, so it drops its two lowest: token 2's (0.2 and 0.1).
EXPERTS_TK = torch.tensor([[0, 1], [0, 2], [1, 0], [3, 1]])
AFFINITY_TK = torch.tensor([[0.6, 0.3], [0.5, 0.4], [0.2, 0.1], [0.7, 0.25]])


def dropping_config(**changes) -> ModelConfig:
    values = dict(n_routed_experts=4, n_activated_experts=2, n_devices=2, device_capacity_factor=1.0,
                  never_drop_share=0.0)
    return ModelConfig(**{**values, **changes})


def hand_made_routing() -> Routing:
    return Routing(*topk_pairs(EXPERTS_TK, AFFINITY_TK))


def drop(config: ModelConfig, training: bool = True) -> Routing:
    return drop_over_device_capacity(config, hand_made_routing(), AFFINITY_TK, torch.arange(4), 2, training)


def pairs(routing: Routing) -> list[tuple[int, int]]:
    return list(zip(routing.token_index_S.tolist(), routing.expert_index_S.tolist()))


def test_the_lowest_affinity_pairs_of_the_full_device_are_dropped():
    """Exactly token 2's two pairs go; device 1, under its capacity, keeps both of its pairs."""
    routing = drop(dropping_config())
    assert pairs(routing) == [(0, 0), (0, 1), (1, 0), (1, 2), (3, 3), (3, 1)]
    assert routing.weight_S.tolist() == pytest.approx([0.6, 0.3, 0.5, 0.4, 0.7, 0.25])


def test_kept_and_dropped_add_up_to_the_chosen_pairs():
    """tokens_per_expert counts the kept pairs; with dropped_tokens they make up all T * K' chosen pairs."""
    routing = drop(dropping_config())
    assert routing.stats.tokens_per_expert.tolist() == [2, 2, 1, 1]
    assert routing.stats.dropped_tokens.item() == 2
    assert routing.stats.tokens_per_expert.sum() + routing.stats.dropped_tokens == EXPERTS_TK.numel()


def test_protected_pairs_are_kept_and_the_rest_fill_the_remaining_capacity():
    """Protect sequence 1 (tokens 2, 3): device 0 keeps its 3 pairs, then only its best other (0.6), of 4."""
    device_S = EXPERTS_TK.reshape(-1) // 2
    protected_S = torch.tensor([False] * 4 + [True] * 4)
    keep_S = keep_within_capacity(device_S, AFFINITY_TK.reshape(-1), protected_S, 2, capacity=4)
    assert keep_S.tolist() == [True, False, False, True, True, True, True, True]


def test_a_capacity_factor_of_two_thirds_drops_one_pair_more():
    """ceil(2/3 * 8 / 2) = 3: device 0 also drops its next lowest pair (token 3's 0.25)."""
    assert pairs(drop(dropping_config(device_capacity_factor=2 / 3))) == [(0, 0), (0, 1), (1, 0), (1, 2), (3, 3)]


@pytest.mark.parametrize("changes, training", [(dict(never_drop_share=1.0), True),
                                               (dict(device_capacity_factor=None), True),
                                               (dict(), False)])
def test_nothing_is_dropped_when_every_sequence_is_protected_when_off_or_in_eval(changes, training):
    """never_drop_share=1 protects every sequence; an unset factor or eval mode leaves the routing alone."""
    routing = drop(dropping_config(**changes), training)
    assert pairs(routing) == pairs(hand_made_routing())


def plain_keep(device_S, affinity_S, protected_S, capacity) -> list[bool]:
    """Per device: keep the protected pairs, then the others by falling affinity (earlier first on ties)."""
    keep = list(protected_S.tolist())
    for device in set(device_S.tolist()):
        mine = [s for s in range(len(keep)) if device_S[s] == device]
        room = capacity - sum(keep[s] for s in mine)
        for s in sorted((s for s in mine if not keep[s]), key=lambda s: -affinity_S[s].item())[:max(room, 0)]:
            keep[s] = True
    return keep


@pytest.mark.parametrize("seed", range(6))
def test_matches_plain_loop_on_random_routings(seed):
    """Random devices, affinities (rounded, so there are ties), protection and capacity: the loop agrees."""
    generator = torch.Generator().manual_seed(seed)
    n_pairs, n_devices = 48, 4
    device_S = torch.randint(0, n_devices, (n_pairs,), generator=generator)
    affinity_S = torch.rand(n_pairs, generator=generator).mul(10).round().div(10)
    protected_S = torch.rand(n_pairs, generator=generator) < 0.2
    capacity = int(torch.randint(1, 16, (), generator=generator))
    keep_S = keep_within_capacity(device_S, affinity_S, protected_S, n_devices, capacity)
    assert keep_S.tolist() == plain_keep(device_S, affinity_S, protected_S, capacity)


def test_about_the_share_of_sequences_is_protected_each_by_its_own_tokens():
    """Over 4000 random sequences ~10% are protected, and a sequence's protection depends on its tokens alone."""
    token_ids_BL = torch.randint(0, 50000, (4000, 16), generator=torch.Generator().manual_seed(0))
    protected_B = never_dropped_sequences(token_ids_BL, 0.1)
    assert 0.08 < protected_B.float().mean().item() < 0.12
    assert torch.equal(never_dropped_sequences(token_ids_BL[7:20], 0.1), protected_B[7:20])
    assert not never_dropped_sequences(token_ids_BL, 0.0).any() and never_dropped_sequences(token_ids_BL, 1.0).all()


def routed(name: str, training: bool, **changes) -> tuple[Routing, torch.nn.Module]:
    """A router of 8 experts on 4 devices, K' = 2, over 4 random sequences of 8 tokens."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=64, hidden_size=32, n_heads=2, router=name, n_routed_experts=8,
                         n_activated_experts=2, n_devices=4, device_capacity_factor=0.5, **changes)
    router = ROUTERS[name](config).train(training)
    init_weights(router, std=0.5)
    generator = torch.Generator().manual_seed(1)
    token_ids_T = torch.randint(0, 64, (32,), generator=generator)
    return router(torch.randn(32, 32, generator=generator), token_ids_T, 4), router


@pytest.mark.parametrize("name", ["softmax_topk", "sigmoid_topk"])
def test_routers_drop_in_training_only_and_never_a_protected_sequence(name):
    """Training drops pairs (kept + dropped = T * K'), all of a protected sequence's pairs stay; eval drops none."""
    training, _ = routed(name, True)
    evaluation, _ = routed(name, False)
    assert training.stats.dropped_tokens > 0
    assert training.stats.tokens_per_expert.sum() + training.stats.dropped_tokens == 64
    assert evaluation.stats.dropped_tokens == 0 and evaluation.token_index_S.numel() == 64
    token_ids_BL = torch.randint(0, 64, (32,), generator=torch.Generator().manual_seed(1)).reshape(4, 8)
    protected_B = never_dropped_sequences(token_ids_BL, 0.5)
    kept_per_sequence = torch.bincount(routed(name, True, never_drop_share=0.5)[0].token_index_S // 8, minlength=4)
    assert protected_B.any() and (kept_per_sequence[protected_B] == 16).all()


def test_the_sigmoid_bias_counts_the_chosen_pairs_not_only_the_kept():
    """The aux-loss-free bias balances the router's choices, so it sees all T * K' pairs, dropped ones too."""
    routing, router = routed("sigmoid_topk", True)
    assert routing.stats.dropped_tokens > 0 and router.load_since_update.sum() == 64
