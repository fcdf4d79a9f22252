"""The router interface: hidden states in; token-expert assignments, aux losses and stats out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from dsmoe.config import ModelConfig
from dsmoe.registry import RouterTraits


@dataclass
class RouterStats:
    """Detached routing statistics of one MoE layer for one forward pass."""

    tokens_per_expert: torch.Tensor  # [E] int64: token-expert assignments each expert processed
    dropped_tokens: torch.Tensor  # [] int64: assignments chosen but dropped by capacity limits


@dataclass
class Routing:
    """A token-choice or expert-choice routing as flat token-expert pairs.

    Pair s sends token `token_index_S[s]` to expert `expert_index_S[s]` and scales that expert's
    output by `weight_S[s]` before summing into the token's output. The MoE layer's dispatcher moves the tokens
    (dsmoe.model.moe).
    """

    token_index_S: torch.Tensor  # [S] int64
    expert_index_S: torch.Tensor  # [S] int64
    weight_S: torch.Tensor  # [S] float32
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    stats: RouterStats | None = None
    balance_counts_E: torch.Tensor | None = None  # [E] float, in training: the choices f_i counts (balance.py)


@dataclass
class SoftRouting:
    """Soft MoE routing (Puigcerver et al. 2023): every slot is a weighted mix of a sequence's tokens.

    slot j of expert e (column e * slots_per_expert + j) reads sum_t dispatch[b, t, col] * x[b, t]
    and token t reads sum_col combine[b, t, col] * slot_output[b, col]; the MoE layer's dispatcher mixes them
    (dsmoe.model.moe.LocalDispatcher).
    """

    dispatch_BLX: torch.Tensor  # softmax over tokens (dim 1)
    combine_BLX: torch.Tensor  # softmax over slots (dim 2)
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    stats: RouterStats | None = None


class Router(nn.Module, ABC):
    """Base class: holds the gate weight [E, D] (DeepSeek's `gate.weight`) and computes fp32 logits.

    `traits` say what the router is to the code outside dsmoe.routers (validation, the parallel layout, interop,
    the analyses); a built-in router's are its line in dsmoe.registry.ROUTERS.

    A router owns its state, and says through these methods what the rest of the library must do with it:
    init_weights (its rows of the one init table, dsmoe.model.init), pending_statistics / apply_step_update /
    discard_step (what it accumulates over an optimizer step and applies after it, see step_updates.py),
    rebuild_buffers (its computed, non-persistent buffers after a meta-device build or load),
    set_balance_phase / balance_statistics (the global batch's counts for the expert-level loss, counted by a
    pre-pass, see global_balance.py) and
    HF_TENSOR_NAMES (which of its checkpoint tensors a Hugging Face checkpoint holds, and under what name).
    """

    traits: ClassVar[RouterTraits] = RouterTraits()
    HF_TENSOR_NAMES: ClassVar[dict[str, str]] = {"weight": "weight"}  # own state-dict name -> name under `gate.`

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.n_experts = config.n_routed_experts
        self.top_k = config.n_activated_experts
        self.balance_phase = "off"
        self.global_counts_E: torch.Tensor | None = None
        self.disabled_E: torch.Tensor | None = None  # [E] bool, set by disable_experts; not part of the state
        self.register_forward_hook(add_global_counts)
        if self.traits.has_gate:
            self.weight = nn.Parameter(torch.empty(self.gate_rows(config), config.hidden_size))

    @staticmethod
    def gate_rows(config: ModelConfig) -> int:
        return config.n_routed_experts

    def logits(self, x_TD: torch.Tensor) -> torch.Tensor:
        """Router logits in fp32 even under autocast (routing decisions are precision-sensitive); -inf for the
        disabled experts, so that no token can choose them."""
        with torch.autocast(device_type=x_TD.device.type, enabled=False):
            logits_TE = nn.functional.linear(x_TD.float(), self.weight.float())
        return self.without_disabled(logits_TE)

    def affinities(self, x_TD: torch.Tensor) -> torch.Tensor:
        """[T, E]: the router's distribution over all experts for each token (rows sum to 1), the softmax of its
        logits; what its entropy is measured on."""
        return self.logits(x_TD).softmax(dim=-1)

    why_experts_stay = "only token-choice routers with a gate choose by scores that can exclude an expert"

    @property
    def can_disable_experts(self) -> bool:
        """Whether disable_experts can leave experts out: token-choice routers with a gate choose by scores."""
        return self.traits.has_gate and self.traits.token_choice

    def disable_experts(self, experts: list[int]) -> None:
        """From now on no token chooses these experts and each picks its top-K among the others (DeepSeekMoE
        Sec. 4.5's probe; pruning); [] enables every expert again. Token-choice routers with a gate only."""
        name, unique = type(self).__name__, sorted(set(experts))
        if unique and not self.can_disable_experts:
            raise ValueError(f"{name} cannot disable experts ({len(unique)} asked): {self.why_experts_stay}")
        outside = [e for e in unique if not 0 <= e < self.n_experts]
        if outside:
            raise ValueError(f"{name}: experts {outside} do not exist (n_routed_experts={self.n_experts})")
        reachable = reachable_experts(self.config, unique)
        if reachable < self.top_k:
            groups = f" in its topk_group={self.config.topk_group} of n_group={self.config.n_group} groups" \
                if self.config.n_group > 1 else ""
            raise ValueError(f"{name}: disabling {len(unique)} of n_routed_experts={self.n_experts} experts can leave "
                             f"a token {reachable}{groups}, fewer than n_activated_experts={self.top_k}")
        self.enable_all_experts()
        if unique:
            self.disabled_E = torch.zeros(self.n_experts, dtype=torch.bool, device=self.weight.device)
            self.disabled_E[unique] = True

    def enable_all_experts(self) -> None:
        """Undo disable_experts: the router is again bitwise the router it was."""
        self.disabled_E = None

    def without_disabled(self, scores_TE: torch.Tensor) -> torch.Tensor:
        """-inf at the disabled experts, so that neither a top-k nor a group's score can take them (the scores
        themselves when none is disabled)."""
        return scores_TE if self.disabled_E is None else scores_TE.masked_fill(self.disabled_E, float("-inf"))

    @abstractmethod
    def forward(self, x_TD: torch.Tensor, token_ids_T: torch.Tensor, batch_size: int) -> Routing | SoftRouting:
        """Route the batch's T = batch_size * seq_len tokens (flattened in sequence order)."""

    @torch.no_grad()
    def init_weights(self, std: float) -> None:
        """The gate weight ~ N(0, std); routers with more state extend this."""
        if self.traits.has_gate:
            nn.init.normal_(self.weight, std=std)

    def pending_statistics(self) -> list[torch.Tensor]:
        """Tensors accumulated by training forwards since the last optimizer step. A data-parallel caller sums
        each over ranks, in place, before apply_step_update, so every rank applies the same update."""
        return []

    def apply_step_update(self) -> None:
        """Once after every optimizer step: apply what pending_statistics hold, then clear them."""

    @torch.no_grad()
    def discard_step(self) -> None:
        """A skipped optimizer step: clear the pending statistics without applying them."""
        for statistic in self.pending_statistics():
            statistic.zero_()

    def rebuild_buffers(self) -> None:
        """Recreate the non-persistent buffers (a meta-device build leaves them empty; checkpoints lack them)."""

    def set_balance_phase(self, phase: str) -> None:
        """balance_scope="global_batch" (global_balance.py): "counting" restarts the sum of every forward's f_i
        counts, "using" gives that sum to the expert-level loss of the coming forwards, "off" lets each forward
        use its own counts again. Routers without that loss never count anything."""
        if phase == "counting":
            self.global_counts_E = None
        self.balance_phase = phase

    def balance_statistics(self) -> list[torch.Tensor]:
        """What "counting" summed; a data-parallel caller sums each over ranks, in place, before "using"."""
        return [] if self.global_counts_E is None else [self.global_counts_E]

    @property
    def balance_counts_E(self) -> torch.Tensor | None:
        """The global batch's counts while "using" them, else None (each forward counts its own)."""
        return self.global_counts_E if self.balance_phase == "using" else None


def add_global_counts(router: Router, args: tuple, routing: Routing | SoftRouting) -> None:
    """Forward hook of every router: while "counting", add this forward's f_i counts to the router's sum."""
    if router.balance_phase == "counting" and isinstance(routing, Routing) and routing.balance_counts_E is not None:
        counts_E = routing.balance_counts_E.detach()
        router.global_counts_E = counts_E if router.global_counts_E is None else router.global_counts_E + counts_E


def reachable_experts(config: ModelConfig, disabled: list[int]) -> int:
    """The fewest enabled experts a token can be left to choose from: all of them, or under group-limited routing
    those of its topk_group groups, at worst the emptiest groups that still hold one (groups holding none score
    -inf and are chosen only if nothing else is left, see softmax_topk.limit_to_groups)."""
    per_group = config.n_routed_experts // config.n_group
    enabled_G = [per_group - sum(1 for e in disabled if e // per_group == g) for g in range(config.n_group)]
    return sum(sorted(count for count in enabled_G if count)[:config.topk_group])


def topk_pairs(expert_indices_TK: torch.Tensor, weights_TK: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Flatten [T, K] top-k choices into (token_index_S, expert_index_S, weight_S) pairs."""
    n_tokens, k = expert_indices_TK.shape
    token_index = torch.arange(n_tokens, device=expert_indices_TK.device).repeat_interleave(k)
    return token_index, expert_indices_TK.reshape(-1), weights_TK.reshape(-1)


def count_per_expert(expert_index_S: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Pairs per expert, [n_experts] (a scatter, not bincount, so the shape never depends on the data)."""
    counts_E = torch.zeros(n_experts, dtype=torch.long, device=expert_index_S.device)
    return counts_E.scatter_add_(0, expert_index_S.detach(), torch.ones_like(expert_index_S.detach()))


def no_drops(device: torch.device) -> torch.Tensor:
    return torch.zeros((), dtype=torch.long, device=device)
