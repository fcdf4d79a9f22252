"""A small report made without any run: two sections, two MoE layers, matplotlib PNGs, and text and numbers that
need escaping; shared by the report's file tests and its browser test."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dsmoe.analysis.report_html import Figure, Section, Table, write_report  # noqa: E402

LAYERS = [1, 2]
NUMBERS = {"moe_layers": LAYERS, "note": "</script><!--<script> & <b>", "load": [[0.5, 0.25], [0.125, None]]}


def bar_chart(path: Path, heights: list[float], title: str) -> Path:
    """A bar chart PNG of expert loads, like the analysis plots."""
    fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
    ax.bar(range(len(heights)), heights, color="#4c72b0")
    ax.set(title=title, xlabel="routed expert", ylabel="share of tokens", xticks=range(len(heights)))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def synthetic_report(directory: Path, numbers: dict | None = None) -> Path:
    """report.html in `directory`, its PNGs in `directory`/figures; returns the report's path."""
    figures = directory / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    loads = {1: [0.4, 0.3, 0.2, 0.1], 2: [0.1, 0.2, 0.3, 0.4]}
    summary = Table("Balance <per> layer", ["layer", "CV", "tokens", "dead"],
                    [[1, 0.123456, 16832, "<i>none</i>"], [2, np.float32(0.5), np.int64(1000), True]], "caption & co")
    load = Section("load", "Load <b>balance</b>", "intro & more", [summary], {
        layer: [Figure(f"Expert load, layer {layer}", bar_chart(figures / f"load_{layer}.png", heights,
                                                                 f"Layer {layer}"), "share of the layer's tokens")]
        for layer, heights in loads.items()})
    tokens = Section("tokens", "What experts fire on", per_layer={
        layer: [Table(f"Top tokens, layer {layer}", ["expert", "token"], [[0, "'the'"], [1, "'<'"]])]
        for layer in LAYERS})
    return write_report(directory / "report.html", "Expert <analysis>", "run at step 6", [load, tokens], LAYERS,
                        NUMBERS if numbers is None else numbers)
