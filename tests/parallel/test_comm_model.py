"""The predicted all-to-all volume (dsmoe.parallel.comm_model) against hand-worked cases and against exhaustive
enumeration of every own rank, group choice and expert choice of small layouts; the exact byte count against the
dispatcher's own accounting (traffic.py)."""

from itertools import combinations, permutations

import pytest
import torch

from dsmoe import presets
from dsmoe.parallel.comm_model import (CommVolume, ExpertPlacement, all_to_all_seconds, bytes_moved,
                                       routed_ranks_per_token)
from dsmoe.parallel.traffic import PAIR_BYTES, LayerTraffic

# Hand-worked, K = 2 throughout:
# - N=4, P=2: ranks hold {0,1} and {2,3}; of the C(4,2) = 6 pairs of experts, {0,1} and {2,3} hit one rank and the
#   other 4 hit two: (2 * 1 + 4 * 2) / 6 = 5/3 ranks = 2 * (1 - C(2,2)/C(4,2)).
# - N=8, P=4, n_group=4, M=2: two groups of 2 experts each, K among their 4: again 5/3 = 2 * (1 - C(2,2)/C(4,2)).
# - N=8, P=4, n_group=2, M=1 (a group spans 2 ranks): K among one group's 4 experts on 2 ranks: 5/3 again.
# - N=8, P=2, n_group=4, M=2 (a rank holds 2 groups): the 2 groups are on one rank in 2 of the C(4,2) = 6 choices
#   (1 rank), split in 4 (then 5/3 ranks, as in the first case): 2/6 * 1 + 4/6 * 5/3 = 13/9.
HAND_WORKED = [((4, 2, 2, 1, 1), 5 / 3), ((8, 2, 4, 4, 2), 5 / 3), ((8, 2, 4, 2, 1), 5 / 3), ((8, 2, 2, 4, 2), 13 / 9)]

SMALL_LAYOUTS = [(4, 2, 2, 1, 1), (8, 3, 4, 1, 1), (8, 2, 4, 4, 1), (8, 3, 4, 4, 2), (12, 3, 3, 3, 2),
                 (16, 4, 4, 2, 1), (16, 3, 2, 8, 3), (8, 2, 4, 2, 2), (6, 1, 3, 1, 1), (8, 8, 4, 1, 1)]


def enumerated_means(placement: ExpertPlacement) -> tuple[float, float, float]:
    """Exact means of (ranks, remote ranks, remote pairs) per token: every own rank, every choice of topk_group
    groups, every choice of K of their experts, all equally likely."""
    group_size, per_rank = placement.n_experts // placement.n_group, placement.experts_per_rank
    totals, cases = [0, 0, 0], 0
    for own in range(placement.ep):
        for groups in combinations(range(placement.n_group), placement.topk_group):
            reachable = [g * group_size + i for g in groups for i in range(group_size)]
            for experts in combinations(reachable, placement.top_k):
                ranks = {expert // per_rank for expert in experts}
                remote_pairs = sum(expert // per_rank != own for expert in experts)
                for i, value in enumerate((len(ranks), len(ranks - {own}), remote_pairs)):
                    totals[i] += value
                cases += 1
    return tuple(total / cases for total in totals)


@pytest.mark.parametrize("layout, ranks", HAND_WORKED)
def test_ranks_per_token_matches_the_hand_worked_cases(layout, ranks):
    assert ExpertPlacement(*layout).ranks_per_token() == pytest.approx(ranks, rel=1e-12)


def test_bytes_per_token_matches_a_hand_worked_case():
    # N=4, K=2, P=2, D=4 fp32: remote ranks 5/3 * 1/2 = 5/6, so 2 * 5/6 * 4 * 4 + 2 * 1/2 * 12 = 80/3 + 12
    placement = ExpertPlacement(4, 2, 2)
    volume = CommVolume(placement, placement.ranks_per_token(), hidden_size=4, dtype_bytes=4, n_moe_layers=3)
    assert volume.remote_ranks_per_token == pytest.approx(5 / 6, rel=1e-12)
    assert volume.bytes_per_token == pytest.approx(80 / 3 + 12, rel=1e-12)
    assert volume.bytes_per_token_per_step == pytest.approx(3 * (80 / 3 + 12), rel=1e-12)


@pytest.mark.parametrize("layout", SMALL_LAYOUTS)
def test_predictions_equal_the_exhaustive_enumeration(layout):
    placement = ExpertPlacement(*layout)
    ranks, remote_ranks, remote_pairs = enumerated_means(placement)
    assert placement.ranks_per_token() == pytest.approx(ranks, rel=1e-12)
    volume = CommVolume(placement, placement.ranks_per_token(), hidden_size=1, dtype_bytes=1, n_moe_layers=1)
    assert volume.remote_ranks_per_token == pytest.approx(remote_ranks, rel=1e-12)
    assert placement.remote_pairs_per_token() == pytest.approx(remote_pairs, rel=1e-12)


@pytest.mark.parametrize("layout", SMALL_LAYOUTS[:4])
def test_bytes_per_token_is_the_mean_of_the_exact_bytes(layout):
    # one token's exact bytes: its remote ranks' rows out and back, its remote pairs
    placement, hidden, dtype_bytes = ExpertPlacement(*layout), 6, 2
    _, remote_ranks, remote_pairs = enumerated_means(placement)
    mean_bytes = 2 * remote_ranks * hidden * dtype_bytes + remote_pairs * PAIR_BYTES
    volume = CommVolume(placement, placement.ranks_per_token(), hidden, dtype_bytes, n_moe_layers=1)
    assert volume.bytes_per_token == pytest.approx(mean_bytes, rel=1e-12)


def test_one_rank_moves_nothing():
    assert CommVolume(ExpertPlacement(8, 2, 1), 1.0, hidden_size=64, dtype_bytes=4, n_moe_layers=1).bytes_per_token == 0


def test_bytes_moved_equals_the_dispatchers_accounting():
    # rank 0 of 2: sends 5 rows with 7 pairs, receives 2 rows with 3 pairs, returns those 2 rows and gets 5 back
    hidden, dtype_bytes, traffic = 8, 2, LayerTraffic()
    traffic.add_dispatch(0, [3, 5], [3, 2], [4, 7], [4, 3], hidden * dtype_bytes, torch.tensor([0, 1, 2, 0, 1]), 3)
    traffic.add_combine(0, [3, 2], [3, 5], hidden * dtype_bytes)
    assert traffic.bytes_sent == bytes_moved(5, 2, 7, hidden, dtype_bytes) == 7 * 16 + 7 * 12
    assert traffic.bytes_received == bytes_moved(2, 5, 3, hidden, dtype_bytes)


def test_the_papers_presets_give_their_expected_devices_per_token():
    # C(a - u, K) / C(a, K) = prod_{i < u} (a - K - i) / (a - i)
    # DeepSeek-V3 on 64 devices, 8 nodes of 8, M = 4 nodes: 32 ranks hold its a = 128 reachable experts, u = 4 each
    v3 = ExpertPlacement.of(presets.get("deepseek-v3"), ep=64)
    assert v3.reachable_experts == 128
    assert v3.ranks_per_token() == pytest.approx(32 * (1 - (120 * 119 * 118 * 117) / (128 * 127 * 126 * 125)))
    # DeepSeekMoE 16B over 8 ranks without a limit: K = 6 of a = 64, u = 8 per rank
    paper_16b = ExpertPlacement.of(presets.get("paper-16b"), ep=8)
    assert paper_16b.ranks_per_token() == pytest.approx(8 * (1 - (58 * 57 * 56 * 55 * 54 * 53 * 52 * 51)
                                                                 / (64 * 63 * 62 * 61 * 60 * 59 * 58 * 57)))


@pytest.mark.parametrize("layout, field", [((8, 2, 3, 1, 1), "ep=3"), ((12, 2, 4, 3, 1), "n_group=3 and ep=4"),
                                           ((8, 5, 4, 4, 2), "n_activated_experts=5"),
                                           ((8, 2, 4, 4, 5), "topk_group=5")])
def test_layouts_that_do_not_divide_are_refused_naming_the_fields(layout, field):
    with pytest.raises(ValueError, match=field):
        ExpertPlacement(*layout)


def test_seconds_are_bytes_over_bandwidth():
    assert all_to_all_seconds(4096, 1e4, 50e9) == pytest.approx(4096 * 1e4 / 50e9)
    volume = CommVolume(ExpertPlacement(4, 2, 2), 5 / 3, hidden_size=4, dtype_bytes=4, n_moe_layers=1)
    assert volume.seconds_per_layer(10, 1e3) == pytest.approx(10 * volume.bytes_per_token / 1e3)


def every_ordering(n_experts: int) -> torch.Tensor:
    """[n!, n] scores: every ranking of n iid continuous scores once, so means over them are exact expectations."""
    return torch.tensor(list(permutations(range(n_experts))), dtype=torch.float32)


def test_the_routers_rule_without_a_group_limit_is_uniform_routing():
    placement = ExpertPlacement(6, 2, 3)
    assert routed_ranks_per_token(placement, every_ordering(6)) == pytest.approx(placement.ranks_per_token())


def test_the_routers_group_rule_reaches_more_groups_than_uniform_choice():
    # N=6, K=2, P=3 ranks = groups of 2, M=2 groups by their best score: the token's best expert is in group A, and
    # its second (any of the other 5, equally likely) is in A (1 rank) or else the best of its group, which is then
    # the second group chosen (2 ranks): 1/5 * 1 + 4/5 * 2 = 9/5, where uniform choice among 4 experts gives 5/3
    placement = ExpertPlacement(6, 2, 3, n_group=3, topk_group=2)
    assert routed_ranks_per_token(placement, every_ordering(6)) == pytest.approx(9 / 5)
    assert placement.ranks_per_token() == pytest.approx(5 / 3)
