"""Muon for the hidden matrices, AdamW for the rest, stepped as one optimizer.

Muon (Jordan et al. 2024; torch.optim.Muon) orthogonalises each 2-D update by Newton-Schulz. It is meant for the
hidden layers' matrices: the attention projections, dense FFNs and shared experts here. Embeddings, the output head
(Jordan et al.: "use AdamW for the embedding and head"), norm gains and router gates stay on AdamW. The routed
experts' stacked weights (3-D, which torch.optim.Muon does not take) are hidden matrices too: StackedMuon gives
each expert's matrices the same update, so a routed expert learns as the shared expert and the dense FFN do.

MuonWithAdamW is a torch Optimizer whose param_groups are its parts' groups (Muon's, StackedMuon's, AdamW's), so
the learning-rate schedule, gradient clipping and checkpoints treat it like a single optimizer; its state dict has
the standard layout (state indexed over all its groups' parameters in order).
"""

from __future__ import annotations

import torch
from torch import nn

from dsmoe.model.moe import RoutedExperts
from dsmoe.train.stacked_muon import StackedMuon


def uses_muon(name: str, param: nn.Parameter) -> bool:
    """A hidden 2-D matrix: not the embedding, head or a router gate (those are not hidden-to-hidden maps)."""
    return param.dim() == 2 and not name.startswith(("embed_tokens", "lm_head")) and ".router." not in name


def expert_stacks(model: nn.Module) -> dict[int, list[nn.Parameter]]:
    """The routed experts' trainable stacks [E, rows, cols], by how many matrices each expert's rows hold."""
    stacks: dict[int, list[nn.Parameter]] = {}
    for module in model.modules():
        if isinstance(module, RoutedExperts):
            for name, blocks in module.MATRICES_PER_EXPERT.items():
                if (param := getattr(module, name)).requires_grad:
                    stacks.setdefault(blocks, []).append(param)
    return stacks


class MuonWithAdamW(torch.optim.Optimizer):
    def __init__(self, muon: torch.optim.Muon, adamw: torch.optim.AdamW, stacked: StackedMuon | None = None):
        self.muon, self.stacked, self.adamw = muon, stacked, adamw
        self.parts = [part for part in (muon, stacked, adamw) if part is not None]
        super().__init__([{"params": []}], {})  # the hooks' bookkeeping; the groups are the parts' own

    @property
    def param_groups(self) -> list[dict]:
        """The parts' groups in order: Muon's, StackedMuon's, AdamW's (the dicts themselves: the schedule sets
        their lr)."""
        return [group for part in self.parts for group in part.param_groups]

    @param_groups.setter
    def param_groups(self, value) -> None:  # Optimizer.__init__ assigns its own; the parts keep theirs
        pass

    @property
    def state(self) -> dict:
        """The parts' per-parameter state, keyed by parameter (a new dict: read it, do not write it)."""
        return {key: value for part in self.parts for key, value in part.state.items()}

    @state.setter
    def state(self, value) -> None:  # Optimizer.__init__ assigns an empty state; the parts keep theirs
        pass

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.parts[0].step(closure)
        for part in self.parts[1:]:
            part.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        state, groups, offset = {}, [], 0
        for part in self.parts:
            saved = part.state_dict()
            state.update({index + offset: value for index, value in saved["state"].items()})
            groups += [{**group, "params": [index + offset for index in group["params"]]}
                       for group in saved["param_groups"]]
            offset += sum(len(group["params"]) for group in saved["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        groups, state = state_dict["param_groups"], state_dict["state"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"optimizer state has {len(groups)} parameter groups, Muon with AdamW has "
                             f"{len(self.param_groups)}: it was saved with another optimizer or train.muon_experts")
        first, offset = 0, 0  # the part's first group and first parameter index, as state_dict numbers them
        for part in self.parts:
            own = groups[first:first + len(part.param_groups)]
            indices = [index for group in own for index in group["params"]]
            part.load_state_dict({
                "state": {index - offset: state[index] for index in indices if index in state},
                "param_groups": [{**group, "params": [index - offset for index in group["params"]]}
                                 for group in own]})
            first, offset = first + len(own), offset + len(indices)
