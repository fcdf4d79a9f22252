"""Plots people would rather see than read: the loss curve of a run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

from dsmoe.runs.metrics_log import read_metrics  # noqa: E402


def plot_loss_curve(metrics_path: Path, out_png: Path) -> Path:
    """Training LM loss per step and validation loss at each evaluation, in one PNG."""
    records = read_metrics(metrics_path)
    train = [(r["step"], r["lm_loss"]) for r in records if "lm_loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    val += [(r["step"], r["final_val"]) for r in records if "final_val" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train LM loss", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(Path(metrics_path).parent.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return Path(out_png)
