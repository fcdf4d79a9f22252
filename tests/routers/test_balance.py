"""Aux balance losses against hand-computed values, plain loops and independent reference code."""

import math

import pytest
import torch
import torch.nn.functional as F

from dsmoe import ModelConfig
from dsmoe.routers.balance import (balance_losses, choice_counts, communication_balance_loss, device_balance_loss,
                                   expert_balance_loss, scoped, z_loss)

ALPHA = 0.01


def random_routing(n_tokens: int, n_experts: int, top_k: int, seed: int = 0):
    """Softmax probs [T, E] and their top-k expert indices [T, K], plus the logits they came from."""
    generator = torch.Generator().manual_seed(seed)
    logits_TE = torch.randn(n_tokens, n_experts, generator=generator)
    probs_TE = logits_TE.softmax(dim=-1)
    return logits_TE, probs_TE, probs_TE.topk(top_k, dim=-1).indices


def plain_expert_loss(probs_TE: torch.Tensor, expert_indices_TK: torch.Tensor, alpha: float) -> float:
    """DeepSeekMoE Eq. 12-14 with Python loops: f_i = E/(K T) * #choices of i, P_i = mean_t s_{i,t}."""
    n_tokens, n_experts = probs_TE.shape
    top_k = expert_indices_TK.shape[1]
    chosen = expert_indices_TK.tolist()
    probs = probs_TE.tolist()
    total = 0.0
    for i in range(n_experts):
        f_i = n_experts / (top_k * n_tokens) * sum(row.count(i) for row in chosen)
        p_i = sum(probs[t][i] for t in range(n_tokens)) / n_tokens
        total += f_i * p_i
    return alpha * total


def test_expert_balance_loss_is_alpha_under_uniform_routing():
    """Probs all 1/E and every expert chosen equally often: f_i = 1, P_i = 1/E, so the loss is alpha."""
    n_experts, top_k = 8, 2
    probs_TE = torch.full((n_experts, n_experts), 1.0 / n_experts)
    token_TK = torch.arange(n_experts).unsqueeze(1)
    expert_indices_TK = torch.cat([token_TK, (token_TK + 1) % n_experts], dim=1)  # each expert chosen twice
    loss = expert_balance_loss(probs_TE, choice_counts(expert_indices_TK, probs_TE.shape[1]), ALPHA)
    torch.testing.assert_close(loss, torch.tensor(ALPHA), rtol=0, atol=0)


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_expert_balance_loss_when_every_token_picks_the_same_experts(top_k):
    """All T tokens choose experts 0..K-1 with probs 1/K on them.

    f_i = E / (K T) * T = E / K for i < K (0 otherwise) and P_i = 1/K for i < K, so
    L = alpha * sum_{i<K} (E / K) (1 / K) = alpha * E / K  (alpha * E, the maximum, when K = 1).
    """
    n_tokens, n_experts = 6, 8
    probs_TE = torch.zeros(n_tokens, n_experts)
    probs_TE[:, :top_k] = 1.0 / top_k
    expert_indices_TK = torch.arange(top_k).expand(n_tokens, top_k)
    loss = expert_balance_loss(probs_TE, choice_counts(expert_indices_TK, probs_TE.shape[1]), ALPHA)
    assert loss.item() == pytest.approx(ALPHA * n_experts / top_k, rel=1e-6)


def test_expert_balance_loss_matches_plain_loop():
    """expert_balance_loss equals a plain-loop evaluation of DeepSeekMoE Eq. 12-14 on random routing."""
    _, probs_TE, expert_indices_TK = random_routing(24, 8, 3)
    loss = expert_balance_loss(probs_TE, choice_counts(expert_indices_TK, probs_TE.shape[1]), ALPHA)
    assert loss.item() == pytest.approx(plain_expert_loss(probs_TE, expert_indices_TK, ALPHA), rel=1e-5)


def test_sequence_balance_loss_is_mean_of_per_sequence_losses():
    """The sequence-wise loss is the mean over sequences of the expert loss of each sequence alone."""
    batch, seq_len = 3, 10
    _, probs_TE, expert_indices_TK = random_routing(batch * seq_len, 8, 2, seed=1)
    per_sequence = [plain_expert_loss(probs_TE[b * seq_len:(b + 1) * seq_len],
                                      expert_indices_TK[b * seq_len:(b + 1) * seq_len], ALPHA) for b in range(batch)]
    probs_BLE, expert_indices_BLK = scoped(probs_TE, batch), scoped(expert_indices_TK, batch)
    loss = expert_balance_loss(probs_BLE, choice_counts(expert_indices_BLK, 8), ALPHA)
    assert loss.item() == pytest.approx(sum(per_sequence) / batch, rel=1e-5)


def test_sequence_balance_loss_matches_deepseek_reference():
    """Equal to DeepSeek's own seq_aux code (MoEGate of DeepSeek-MoE / V2, written out verbatim)."""
    batch, seq_len, n_experts, top_k = 4, 12, 8, 2
    _, scores, topk_idx = random_routing(batch * seq_len, n_experts, top_k, seed=2)
    ce = torch.zeros(batch, n_experts)
    ce.scatter_add_(1, topk_idx.view(batch, -1), torch.ones(batch, seq_len * top_k)).div_(seq_len * top_k / n_experts)
    reference = (ce * scores.view(batch, seq_len, -1).mean(1)).sum(1).mean() * ALPHA
    loss = expert_balance_loss(scoped(scores, batch), choice_counts(scoped(topk_idx, batch), n_experts), ALPHA)
    torch.testing.assert_close(loss, reference)


def test_expert_balance_loss_matches_deepseek_reference():
    """Equal to DeepSeek's own non-seq_aux code (MoEGate, written out verbatim)."""
    n_experts, top_k = 8, 2
    _, scores, topk_idx = random_routing(40, n_experts, top_k, seed=3)
    ce = F.one_hot(topk_idx.view(-1), num_classes=n_experts).float().mean(0)
    fi = ce * n_experts
    reference = (scores.mean(0) * fi).sum() * ALPHA
    torch.testing.assert_close(expert_balance_loss(scores, choice_counts(topk_idx, n_experts), ALPHA), reference)


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_transformers_load_balancing_loss_is_top_k_times_ours(top_k):
    """transformers' Mixtral loss averages the top-k mask over tokens only, so it is K * (our loss / alpha)."""
    mixtral = pytest.importorskip("transformers.models.mixtral.modeling_mixtral")
    n_experts = 8
    logits_TE, probs_TE, expert_indices_TK = random_routing(32, n_experts, top_k, seed=4)
    theirs = mixtral.load_balancing_loss_func((logits_TE,), num_experts=n_experts, top_k=top_k)
    ours = expert_balance_loss(probs_TE, choice_counts(expert_indices_TK, probs_TE.shape[1]), ALPHA)
    torch.testing.assert_close(theirs, top_k * ours / ALPHA)


def plain_device_loss(probs_TE: torch.Tensor, expert_indices_TK: torch.Tensor, n_devices: int) -> float:
    """DeepSeekMoE Eq. 15-17 with loops: f'_d = mean of f_i over group d, P'_d = sum of P_i over group d."""
    (n_tokens, n_experts), top_k = probs_TE.shape, expert_indices_TK.shape[1]
    chosen, probs = expert_indices_TK.tolist(), probs_TE.tolist()
    f = [n_experts / (top_k * n_tokens) * sum(row.count(i) for row in chosen) for i in range(n_experts)]
    p = [sum(probs[t][i] for t in range(n_tokens)) / n_tokens for i in range(n_experts)]
    per_device = n_experts // n_devices
    expected = 0.0
    for d in range(n_devices):
        group = range(d * per_device, (d + 1) * per_device)
        expected += sum(f[i] for i in group) / per_device * sum(p[i] for i in group)
    return ALPHA * expected


def test_device_balance_loss_matches_plain_loop():
    _, probs_TE, expert_indices_TK = random_routing(30, 8, 2, seed=5)
    loss = device_balance_loss(probs_TE, choice_counts(expert_indices_TK, 8), ALPHA, 4)
    assert loss.item() == pytest.approx(plain_device_loss(probs_TE, expert_indices_TK, 4), rel=1e-5)


def test_z_loss_matches_manual_logsumexp():
    """z_loss = coef * mean_t (log sum_i exp(logit_{t,i}))^2 (ST-MoE Eq. 5), logsumexp written out."""
    logits_TE, _, _ = random_routing(16, 8, 1, seed=6)
    logits_TE = logits_TE * 5
    squares = []
    for row in logits_TE.tolist():
        peak = max(row)
        squares.append((peak + math.log(sum(math.exp(v - peak) for v in row))) ** 2)
    coef = 1e-3
    assert z_loss(logits_TE, coef).item() == pytest.approx(coef * sum(squares) / len(squares), rel=1e-5)


def plain_comm_loss(probs_TE: torch.Tensor, expert_indices_TK: torch.Tensor, n_devices: int, limit: int) -> float:
    """DeepSeek-V2 Sec. 2.2.3 with loops: f''_d = D/(M T) * #tokens sending to d (once each), P''_d = sum P_j."""
    n_tokens, n_experts = probs_TE.shape
    per_device = n_experts // n_devices
    probs = probs_TE.tolist()
    total = 0.0
    for d in range(n_devices):
        sent = sum(any(e // per_device == d for e in row) for row in expert_indices_TK.tolist())
        p_d = sum(probs[t][j] for t in range(n_tokens) for j in range(d * per_device, (d + 1) * per_device)) / n_tokens
        total += n_devices / (limit * n_tokens) * sent * p_d
    return ALPHA * total


def test_comm_balance_loss_is_alpha_under_uniform_routing():
    """4 experts on D = 2 devices, M = 1: tokens alternate devices, both choices on one device (counted once).
    f''_d = 2/(1 * 4) * 2 = 1, P''_d = 2 * 1/4 = 1/2, so L = alpha * (1/2 + 1/2) = alpha."""
    probs_TE = torch.full((4, 4), 0.25)
    expert_indices_TK = torch.tensor([[0, 1], [2, 3], [1, 0], [3, 2]])
    loss = communication_balance_loss(probs_TE, expert_indices_TK, ALPHA, n_devices=2, device_limit=1)
    torch.testing.assert_close(loss, torch.tensor(ALPHA))


def test_comm_balance_loss_when_every_token_is_sent_to_one_device():
    """All T tokens choose experts 0 and 1 (device 0) with probs 1/2 each: f''_0 = D/(M T) * T = 2,
    P''_0 = 1, f''_1 = 0, so L = 2 * alpha (D/M times alpha, the maximum for M = 1)."""
    probs_TE = torch.tensor([[0.5, 0.5, 0.0, 0.0]]).expand(6, 4)
    expert_indices_TK = torch.tensor([[0, 1]]).expand(6, 2)
    loss = communication_balance_loss(probs_TE, expert_indices_TK, ALPHA, n_devices=2, device_limit=1)
    assert loss.item() == pytest.approx(2 * ALPHA, rel=1e-6)


def test_comm_balance_loss_counts_a_device_once_per_token():
    """Skewed: token 0 sends both choices to device 0, token 1 one to each device (M = 2, D = 2, T = 2).
    Sent counts (2, 1): f'' = 2/(2 * 2) * (2, 1) = (1, 1/2); probs rows (.4 .3 .2 .1), (.1 .4 .3 .2) give
    P'' = ((.7 + .5) / 2, (.3 + .5) / 2) = (.6, .4); L = alpha * (.6 + .2) = .8 alpha
    (1.1 alpha if counted per pair)."""
    probs_TE = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.1, 0.4, 0.3, 0.2]])
    expert_indices_TK = torch.tensor([[0, 1], [1, 2]])
    loss = communication_balance_loss(probs_TE, expert_indices_TK, ALPHA, n_devices=2, device_limit=2)
    assert loss.item() == pytest.approx(0.8 * ALPHA, rel=1e-6)


def test_comm_balance_loss_matches_plain_loop():
    _, probs_TE, expert_indices_TK = random_routing(20, 8, 3, seed=7)
    loss = communication_balance_loss(probs_TE, expert_indices_TK, ALPHA, n_devices=4, device_limit=2)
    assert loss.item() == pytest.approx(plain_comm_loss(probs_TE, expert_indices_TK, 4, 2), rel=1e-5)


def scope_losses(balance_scope: str, counted_TK: torch.Tensor, probs_TE: torch.Tensor, batch: int,
                 **changes) -> dict[str, torch.Tensor]:
    """balance_losses of 8 experts on D = 4 devices (= groups, M = 2) with every loss at ALPHA."""
    config = ModelConfig(n_routed_experts=8, n_activated_experts=counted_TK.shape[1], n_group=4, topk_group=2,
                         n_devices=4, aux_loss_alpha=ALPHA, device_balance_alpha=ALPHA, comm_balance_alpha=ALPHA,
                         balance_scope=balance_scope, **changes)
    return balance_losses(config, probs_TE, counted_TK, choice_counts(counted_TK, 8), probs_TE.log(), batch, None)


def per_sequence_mean(loss, probs_TE: torch.Tensor, counted_TK: torch.Tensor, batch: int, *args) -> float:
    seq_len = len(probs_TE) // batch
    return sum(loss(probs_TE[b * seq_len:(b + 1) * seq_len], counted_TK[b * seq_len:(b + 1) * seq_len], *args)
               for b in range(batch)) / batch


def test_sequence_scope_makes_the_device_and_communication_losses_per_sequence_too():
    """DeepSeek-V2 Sec. 2.2.3: T is a sequence's tokens in all three losses, each averaged over the sequences."""
    batch = 3
    _, probs_TE, counted_TK = random_routing(batch * 10, 8, 2, seed=8)
    losses = scope_losses("sequence", counted_TK, probs_TE, batch)
    assert losses["seq_balance"].item() == pytest.approx(
        per_sequence_mean(plain_expert_loss, probs_TE, counted_TK, batch, ALPHA), rel=1e-5)
    assert losses["device_balance"].item() == pytest.approx(
        per_sequence_mean(plain_device_loss, probs_TE, counted_TK, batch, 4), rel=1e-5)
    assert losses["comm_balance"].item() == pytest.approx(
        per_sequence_mean(plain_comm_loss, probs_TE, counted_TK, batch, 4, 2), rel=1e-5)
    whole = scope_losses("micro_batch", counted_TK, probs_TE, batch)
    assert whole["device_balance"].item() == pytest.approx(plain_device_loss(probs_TE, counted_TK, 4), rel=1e-5)
    assert whole["comm_balance"].item() == pytest.approx(plain_comm_loss(probs_TE, counted_TK, 4, 2), rel=1e-5)
    assert whole["device_balance"].item() != pytest.approx(losses["device_balance"].item(), rel=1e-3)


@pytest.mark.parametrize("count", ["chosen", "unbiased_topk"])
def test_sequence_loss_counts_the_chosen_experts_or_the_unbiased_top_k(count):
    """seq_balance_count="chosen": the experts routed to (here each token's two least likely, as a bias or a group
    limit could choose); "unbiased_topk": DeepSeek-V3 Eq. 18's 1(s_{i,t} in TopK(s_t, K')) of the affinities."""
    batch = 2
    _, probs_TE, top_TK = random_routing(batch * 12, 8, 2, seed=9)
    chosen_TK = (-probs_TE).topk(2, dim=-1).indices
    counted_TK = {"chosen": chosen_TK, "unbiased_topk": top_TK}[count]
    loss = scope_losses("sequence", chosen_TK, probs_TE, batch, seq_balance_count=count)["seq_balance"]
    assert loss.item() == pytest.approx(per_sequence_mean(plain_expert_loss, probs_TE, counted_TK, batch, ALPHA),
                                        rel=1e-5)
