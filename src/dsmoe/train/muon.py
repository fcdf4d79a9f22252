"""Muon for the hidden matrices, AdamW for the rest, stepped as one optimizer.

Muon (Jordan et al. 2024; torch.optim.Muon) orthogonalises each 2-D update by Newton-Schulz. It is meant for the
hidden layers' matrices: the attention projections, dense FFNs and shared experts here. Embeddings, the output head
(Jordan et al.: "use AdamW for the embedding and head"), norm gains, router gates and the stacked routed-expert
weights (3-D, which torch.optim.Muon does not take) stay on AdamW.

MuonWithAdamW is a torch Optimizer whose param_groups are the two optimizers' groups, Muon's first, so the
learning-rate schedule, gradient clipping and checkpoints treat it like a single optimizer; its state dict has
the standard layout (state indexed over all its groups' parameters in order).
"""

from __future__ import annotations

import torch
from torch import nn


def uses_muon(name: str, param: nn.Parameter) -> bool:
    """A hidden 2-D matrix: not the embedding, head or a router gate (those are not hidden-to-hidden maps)."""
    return param.dim() == 2 and not name.startswith(("embed_tokens", "lm_head")) and ".router." not in name


class MuonWithAdamW(torch.optim.Optimizer):
    def __init__(self, muon: torch.optim.Muon, adamw: torch.optim.AdamW):
        self.muon, self.adamw = muon, adamw
        super().__init__([{"params": []}], {})  # the hooks' bookkeeping; the groups are the two optimizers'

    @property
    def param_groups(self) -> list[dict]:
        """The two optimizers' groups, Muon's first (the dicts themselves: the schedule sets their lr)."""
        return [*self.muon.param_groups, *self.adamw.param_groups]

    @param_groups.setter
    def param_groups(self, value) -> None:  # Optimizer.__init__ assigns its own; the two optimizers keep theirs
        pass

    @property
    def state(self) -> dict:
        """Both optimizers' per-parameter state, keyed by parameter (a new dict: read it, do not write it)."""
        return {**self.muon.state, **self.adamw.state}

    @state.setter
    def state(self, value) -> None:  # Optimizer.__init__ assigns an empty state; the two optimizers keep theirs
        pass

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.muon.step(closure)
        self.adamw.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none)
        self.adamw.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        first, second = self.muon.state_dict(), self.adamw.state_dict()
        offset = sum(len(group["params"]) for group in first["param_groups"])
        state = {**first["state"], **{index + offset: value for index, value in second["state"].items()}}
        groups = [*first["param_groups"],
                  *({**group, "params": [index + offset for index in group["params"]]}
                    for group in second["param_groups"])]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        n_muon_groups = len(self.muon.param_groups)
        groups = state_dict["param_groups"]
        if len(groups) != n_muon_groups + len(self.adamw.param_groups):
            raise ValueError(f"optimizer state has {len(groups)} parameter groups, Muon with AdamW has "
                             f"{len(self.param_groups)}: it was saved with another optimizer")
        offset = sum(len(group["params"]) for group in groups[:n_muon_groups])
        state = state_dict["state"]
        self.muon.load_state_dict({"state": {i: v for i, v in state.items() if i < offset},
                                   "param_groups": groups[:n_muon_groups]})
        self.adamw.load_state_dict({
            "state": {i - offset: v for i, v in state.items() if i >= offset},
            "param_groups": [{**g, "params": [i - offset for i in g["params"]]} for g in groups[n_muon_groups:]]})
