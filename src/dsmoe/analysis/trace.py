"""The routing trace: every token's chosen experts and weights in every MoE layer, recorded over a data set.

On disk, a directory TRACE/ that numpy alone reads (np.load(path, mmap_mode="r")):

    meta.json          {"format": 1, "moe_layers": [layer indices], "n_experts": E, "top_k": K,
                        "domains": [names], "checkpoint": path or null, "seq_len": L, "n_tokens": T,
                        "entropy": whether entropy_{l}.npy files exist}
    token_ids.npy      [T] int32     the input tokens, in corpus order, window of L after window of L
    domains.npy        [T] int16     each token's domain, an index into meta["domains"]
    experts_{l}.npy    [T, K] int16  for MoE layer l, the experts the token was sent to, in the router's
                                     order; -1 in the slots of pairs a capacity limit dropped (they come last)
    weights_{l}.npy    [T, K] float32 the weight of each of those experts' outputs (0 where dropped)
    entropy_{l}.npy    [T] float32   the entropy, in nats, of the router's distribution over all E experts for
                                     the token (Router.affinities); absent for routers without a gate (hash),
                                     and meta["entropy"] is then false

The arrays are memory-mapped files sized up front and filled batch by batch, so recording a large corpus takes
no more RAM than a small one. The routers are observed by forward hooks registered from here and removed after:
the model knows nothing of tracing. Token-choice routers only (RouterTraits.token_choice).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dsmoe.analysis.hooks import hooked
from dsmoe.routers import ROUTERS, Routing

FORMAT = 1
META = "meta.json"
TOKEN_IDS = "token_ids.npy"
DOMAINS = "domains.npy"


def experts_name(layer: int) -> str:
    return f"experts_{layer}.npy"


def weights_name(layer: int) -> str:
    return f"weights_{layer}.npy"


def entropy_name(layer: int) -> str:
    return f"entropy_{layer}.npy"


class Trace:
    """An opened trace directory: its meta.json as properties and its arrays memory-mapped read-only."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta = json.loads((self.path / META).read_text())
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{self.path}: trace format {self.meta.get('format')!r}, this dsmoe reads {FORMAT}")

    def _array(self, name: str) -> np.ndarray:
        return np.load(self.path / name, mmap_mode="r")

    moe_layers = property(lambda self: list(self.meta["moe_layers"]))
    n_experts = property(lambda self: int(self.meta["n_experts"]))
    top_k = property(lambda self: int(self.meta["top_k"]))
    domain_names = property(lambda self: list(self.meta["domains"]))
    seq_len = property(lambda self: int(self.meta["seq_len"]))
    n_tokens = property(lambda self: int(self.meta["n_tokens"]))
    has_entropy = property(lambda self: bool(self.meta.get("entropy", False)))
    token_ids = property(lambda self: self._array(TOKEN_IDS))
    domains = property(lambda self: self._array(DOMAINS))

    def experts(self, layer: int) -> np.ndarray:
        """[T, K] int16 expert indices of MoE layer `layer` (-1: dropped)."""
        return self._array(experts_name(layer))

    def weights(self, layer: int) -> np.ndarray:
        """[T, K] float32 weights of MoE layer `layer` (0: dropped)."""
        return self._array(weights_name(layer))

    def entropy(self, layer: int) -> np.ndarray:
        """[T] float32 router entropy in nats of MoE layer `layer` (only when has_entropy)."""
        return self._array(entropy_name(layer))


def pairs_to_slots(routing: Routing, n_tokens: int, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat pairs as [T, K] experts (-1 padded) and weights (0 padded), each token's pairs in their own order."""
    token_S = routing.token_index_S.detach()
    order_S = torch.sort(token_S, stable=True).indices
    sorted_token_S = token_S[order_S]
    pairs_T = torch.bincount(sorted_token_S, minlength=n_tokens)
    first_T = torch.cumsum(pairs_T, 0) - pairs_T
    slot_S = torch.arange(len(sorted_token_S), device=token_S.device) - first_T[sorted_token_S]
    if len(slot_S) and int(slot_S.max()) >= top_k:
        raise ValueError(f"a token has {int(slot_S.max()) + 1} routed pairs, more than top_k={top_k}")
    experts_TK = torch.full((n_tokens, top_k), -1, dtype=torch.int16, device=token_S.device)
    weights_TK = torch.zeros((n_tokens, top_k), dtype=torch.float32, device=token_S.device)
    experts_TK[sorted_token_S, slot_S] = routing.expert_index_S.detach()[order_S].to(torch.int16)
    weights_TK[sorted_token_S, slot_S] = routing.weight_S.detach()[order_S].float()
    return experts_TK, weights_TK


def moe_routers(model: nn.Module) -> dict[int, nn.Module]:
    """The router of each MoE layer by layer index; refuses routers whose tokens do not choose experts."""
    routers = {index: block.ffn.router for index, block in enumerate(model.layers) if block.is_moe}
    name = model.config.router
    if any(not router.traits.token_choice for router in routers.values()):
        raise ValueError(f"router={name!r} is not a token-choice router: a routing trace records each token's "
                         f"top_k experts, which only token-choice routers choose (not "
                         f"{', '.join(ROUTERS.having(lambda traits: not traits.token_choice))})")
    return routers


def windows_of(domain_tokens: dict[str, np.ndarray], seq_len: int) -> list[tuple[int, int, int]]:
    """(domain index, start, stop) of every whole window of seq_len tokens, domain after domain."""
    return [(index, start, start + seq_len) for index, tokens in enumerate(domain_tokens.values())
            for start in range(0, len(tokens) - seq_len + 1, seq_len)]


def open_arrays(out_dir: Path, layers: list[int], n_tokens: int, top_k: int, entropy: bool) -> dict[str, np.ndarray]:
    """The trace's .npy files, created at their full size and memory-mapped for writing."""
    shapes = {TOKEN_IDS: ((n_tokens,), np.int32), DOMAINS: ((n_tokens,), np.int16),
              **{experts_name(layer): ((n_tokens, top_k), np.int16) for layer in layers},
              **{weights_name(layer): ((n_tokens, top_k), np.float32) for layer in layers},
              **{entropy_name(layer): ((n_tokens,), np.float32) for layer in (layers if entropy else [])}}
    return {name: np.lib.format.open_memmap(out_dir / name, mode="w+", dtype=dtype, shape=shape)
            for name, (shape, dtype) in shapes.items()}


@torch.no_grad()
def record_trace(model: nn.Module, domain_tokens: dict[str, np.ndarray], seq_len: int, out_dir: str | Path,
                 batch_size: int = 8, checkpoint: str | Path | None = None) -> Trace:
    """Route every whole window of seq_len tokens of each domain (in order) through `model`, batch_size windows
    at a time, and write the trace (see the module docstring) to `out_dir`. The model is left as it was."""
    routers, top_k = moe_routers(model), model.config.n_activated_experts
    windows = windows_of(domain_tokens, seq_len)
    if not windows:
        raise ValueError(f"no domain has seq_len={seq_len} tokens: nothing to trace")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entropy = all(router.traits.has_gate for router in routers.values())
    arrays = open_arrays(out_dir, list(routers), len(windows) * seq_len, top_k, entropy)
    caught: dict[int, tuple[Routing, torch.Tensor | None]] = {}

    def catch(router: nn.Module, args: tuple, routing: Routing, layer: int) -> None:
        caught[layer] = (routing, torch.special.entr(router.affinities(args[0])).sum(-1) if entropy else None)

    handles = [router.register_forward_hook(functools.partial(catch, layer=layer)) for layer, router in routers.items()]
    device, token_arrays = next(model.parameters()).device, list(domain_tokens.values())
    with hooked(model, handles):
        for first in tqdm(range(0, len(windows), batch_size), desc="trace", unit="batch", dynamic_ncols=True):
            batch = windows[first:first + batch_size]
            ids_BL = np.stack([token_arrays[domain][start:stop] for domain, start, stop in batch]).astype(np.int64)
            model(torch.from_numpy(ids_BL).to(device))
            rows = slice(first * seq_len, (first + len(batch)) * seq_len)
            arrays[TOKEN_IDS][rows] = ids_BL.reshape(-1)
            arrays[DOMAINS][rows] = np.repeat([domain for domain, _, _ in batch], seq_len)
            for layer, (routing, entropy_T) in caught.items():
                experts_TK, weights_TK = pairs_to_slots(routing, ids_BL.size, top_k)
                arrays[experts_name(layer)][rows] = experts_TK.cpu().numpy()
                arrays[weights_name(layer)][rows] = weights_TK.cpu().numpy()
                if entropy_T is not None:
                    arrays[entropy_name(layer)][rows] = entropy_T.float().cpu().numpy()
    for array in arrays.values():
        array.flush()
    meta = {"format": FORMAT, "moe_layers": list(routers), "n_experts": model.config.n_routed_experts,
            "top_k": top_k, "domains": list(domain_tokens), "checkpoint": str(checkpoint) if checkpoint else None,
            "seq_len": seq_len, "n_tokens": len(windows) * seq_len, "entropy": entropy}
    (out_dir / META).write_text(json.dumps(meta, indent=1) + "\n")
    return Trace(out_dir)
