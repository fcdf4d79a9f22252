"""What expert parallelism moved: per MoE layer and rank, tokens and bytes sent to and received from the other
ranks of its ep group, and the devices each token visited (DeepSeek-V2 Sec. 2.2.2's M bounds them)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

PAIR_BYTES = 4 + 8  # what travels with each token-expert pair: its fp32 weight and its int64 row


def remote(counts: list[int], own: int) -> int:
    return sum(counts) - counts[own]


@dataclass
class LayerTraffic:
    """Sums since the last reset. Forward traffic only: backward sends the same bytes the other way."""

    tokens: int = 0  # local tokens routed
    tokens_sent: int = 0  # token rows sent to other ranks (a token once per rank holding its experts)
    tokens_received: int = 0
    bytes_sent: int = 0  # hidden states out (dispatch) and back (combine), plus the pairs' weights and rows
    bytes_received: int = 0
    rank_visits: int = 0  # sum over tokens of the ranks (its own included) holding its experts
    max_ranks_per_token: int = 0

    def add_dispatch(self, own: int, rows_sent: list[int], rows_received: list[int], pairs_sent: list[int],
                     pairs_received: list[int], row_bytes: int, sent_token_R: torch.Tensor, n_tokens: int) -> None:
        self.tokens += n_tokens
        self.tokens_sent += remote(rows_sent, own)
        self.tokens_received += remote(rows_received, own)
        self.bytes_sent += remote(rows_sent, own) * row_bytes + remote(pairs_sent, own) * PAIR_BYTES
        self.bytes_received += remote(rows_received, own) * row_bytes + remote(pairs_received, own) * PAIR_BYTES
        self.rank_visits += sum(rows_sent)
        if n_tokens:
            ranks_T = torch.bincount(sent_token_R, minlength=n_tokens)
            self.max_ranks_per_token = max(self.max_ranks_per_token, int(ranks_T.max()))

    def add_combine(self, own: int, rows_sent: list[int], rows_received: list[int], row_bytes: int) -> None:
        self.bytes_sent += remote(rows_sent, own) * row_bytes
        self.bytes_received += remote(rows_received, own) * row_bytes

    def reset(self) -> None:
        for name in fields(self):
            setattr(self, name.name, 0)

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([getattr(self, name.name) for name in fields(self)], dtype=torch.float64)


FIELDS = [name.name for name in fields(LayerTraffic)]


def traffic_record(per_rank_ZPX: torch.Tensor, moe_layers: list[int]) -> dict[str, dict]:
    """metrics.jsonl's "traffic": per MoE layer, each field per rank, and the imbalance max/mean over ranks of the
    tokens and bytes each rank received (the slowest rank sets the all-to-all's time). X: FIELDS."""
    record = {}
    for layer, per_rank_PX in zip(moe_layers, per_rank_ZPX):
        entry = {name: [int(value) for value in per_rank_PX[:, i].tolist()] for i, name in enumerate(FIELDS)}
        for name in ("tokens_received", "bytes_received"):
            column = per_rank_PX[:, FIELDS.index(name)]
            entry[f"{name}_max_over_mean"] = float(column.max() / column.mean()) if column.mean() > 0 else 1.0
        tokens = per_rank_PX[:, FIELDS.index("tokens")].sum()
        entry["ranks_per_token"] = float(per_rank_PX[:, FIELDS.index("rank_visits")].sum() / tokens) if tokens else 0.0
        entry["bytes_per_token"] = float(per_rank_PX[:, FIELDS.index("bytes_sent")].sum() / tokens) if tokens else 0.0
        record[str(layer)] = entry
    return record
