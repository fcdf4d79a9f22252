"""The chart kinds the analysis draws (heatmaps, line panels, grouped bars, curves, histograms, a run's loss curve),
each one function that writes one readable PNG: a title, labelled axes, a colour bar or a legend, sizes that grow
with the data."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from dsmoe.runs.metrics_log import read_metrics  # noqa: E402

DPI = 110
MAX_TICK_LABELS = 32  # more labels than this on an axis are thinned to every n-th


def save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)


def thinned_ticks(axis_set, labels: list[str]) -> None:
    """Label every position, or every n-th when there are too many to read."""
    every = max(1, int(np.ceil(len(labels) / MAX_TICK_LABELS)))
    positions = list(range(0, len(labels), every))
    axis_set(positions, [labels[i] for i in positions])


def heatmap(matrix: np.ndarray, path: Path, title: str, xlabel: str, ylabel: str, colorbar: str,
            row_labels: list[str] | None = None, col_labels: list[str] | None = None, log: bool = False,
            vmin: float | None = None, vmax: float | None = None, cmap: str = "viridis") -> Path:
    """A matrix as colours. With `log` the colour scale is logarithmic (counts spanning orders of magnitude) and
    zero cells are drawn in light grey, named in the colour bar's label."""
    matrix = np.asarray(matrix, dtype=float)
    rows, cols = matrix.shape
    fig, ax = plt.subplots(figsize=(min(16, max(8, 3.0 + 0.24 * cols)), min(12, max(3, 1.6 + 0.35 * rows))))
    colours = plt.get_cmap(cmap).copy()
    if log:
        colours = colours.with_extremes(bad="#dddddd")
        positive = matrix[matrix > 0]
        low = vmin or (positive.min() if positive.size else 1.0)
        high = vmax or (positive.max() if positive.size else 10.0)
        norm = LogNorm(vmin=low, vmax=max(high, low * 1.0001))
        image = ax.imshow(np.ma.masked_less_equal(matrix, 0), aspect="auto", cmap=colours, norm=norm,
                          interpolation="nearest")
        colorbar += " (log scale; grey: 0)" if (matrix <= 0).any() else " (log scale)"
    else:
        image = ax.imshow(matrix, aspect="auto", cmap=colours, vmin=vmin, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, label=colorbar, fraction=0.05, pad=0.02)
    thinned_ticks(ax.set_xticks, col_labels or [str(c) for c in range(cols)])
    thinned_ticks(ax.set_yticks, row_labels or [str(r) for r in range(rows)])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return save(fig, path)


def line_panels(path: Path, title: str, xlabel: str,
                panels: list[tuple[str, dict[str, tuple[list, list]]]], log_panels: tuple[str, ...] = ()) -> Path:
    """One panel per (y label, {line label: (xs, ys)}) stacked over a shared x axis, each with its legend;
    panels named in `log_panels` use a log y axis."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels) + 0.6), sharex=True, squeeze=False)
    for ax, (ylabel, lines) in zip(axes[:, 0], panels):
        for label, (xs, ys) in lines.items():
            ax.plot(xs, ys, label=label, linewidth=1.3)
        if ylabel in log_panels:
            ax.set_yscale("symlog", linthresh=1e-2)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if lines:
            ax.legend(fontsize=8, ncol=min(4, len(lines)), loc="best")
    axes[-1, 0].set_xlabel(xlabel)
    axes[0, 0].set_title(title)
    return save(fig, path)


def grouped_bars(path: Path, title: str, ylabel: str, groups: dict[str, dict[str, float]],
                 errors: dict[str, dict[str, float]] | None = None, xlabel: str = "",
                 ylim: tuple[float | None, float | None] = (None, None), value_labels: bool = False) -> Path:
    """Bars of {group: {series: value}}: one cluster per group, one colour per series, with a legend when there
    is more than one series; `errors` (same shape) draws error bars, `value_labels` writes each value on its bar,
    `ylim` fixes the y axis (None: matplotlib's choice)."""
    names = list(groups)
    series = list(dict.fromkeys(key for values in groups.values() for key in values))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(min(14, max(6, 1.2 + 0.5 * len(names) * max(1, len(series)) ** 0.5)), 4))
    for index, name in enumerate(series):
        xs = np.arange(len(names)) + (index - (len(series) - 1) / 2) * width
        ys = [groups[group].get(name, np.nan) for group in names]
        yerr = [errors[group].get(name, 0.0) for group in names] if errors else None
        bars = ax.bar(xs, ys, width, yerr=yerr, capsize=3 if errors else 0, label=name)
        if value_labels:
            ax.bar_label(bars, fmt="%.3f", padding=2, fontsize=8)
    slanted = max(map(len, names), default=0) > 8  # long names would overlap
    ax.set_xticks(range(len(names)), names, rotation=30 if slanted else 0, ha="right" if slanted else "center")
    if ylim != (None, None):
        ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8, ncol=min(4, len(series)))
    return save(fig, path)


def curves(path: Path, title: str, xlabel: str, ylabel: str, lines: dict[str, tuple[list, list]],
           integer_x: bool = False, errors: dict[str, list[float]] | None = None,
           references: dict[str, tuple[list, list]] | None = None,
           ylim: tuple[float | None, float | None] = (None, None)) -> Path:
    """Lines with markers, {label: (xs, ys)}, and a legend. `errors` ({label: half-widths}) draws error bars on a
    line's points; `references` ({label: (xs, ys)}) are grey dashed lines to read the others against (a baseline,
    zero); `ylim` fixes the y axis (None: matplotlib's choice, which also keeps the references in view)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for index, (label, (xs, ys)) in enumerate((references or {}).items()):
        ax.plot(xs, ys, linestyle=("--", ":", "-.")[index % 3], color="0.45", linewidth=1.3, label=label)
    for label, (xs, ys) in lines.items():
        yerr = (errors or {}).get(label)
        ax.errorbar(xs, ys, yerr=yerr, fmt="o-", capsize=4 if yerr is not None else 0, label=label, linewidth=1.5)
    if integer_x:
        ax.xaxis.get_major_locator().set_params(integer=True)
    if ylim != (None, None):
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return save(fig, path)


def histogram(path: Path, title: str, xlabel: str, ylabel: str, counts: dict[str, np.ndarray],
              bin_edges: np.ndarray) -> Path:
    """Pre-binned counts, {label: counts over bin_edges}, as step outlines so several stay readable."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values in counts.items():
        ax.stairs(values, bin_edges, label=label, linewidth=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(counts) > 1:
        ax.legend(fontsize=8, ncol=min(4, len(counts)))
    return save(fig, path)


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
