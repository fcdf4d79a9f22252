"""The reproduction report's figures, each one PNG at 150 dpi drawn from the runner's results and the summary rows:
validation loss per variant beside the paper's, training curves, MaxVio over training and the suite's probe.

Every figure gives a variant the same colour; the deliberately larger references (`matched: false`) are hatched
bars and dashed lines, so they are never read as part of the matched comparison."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from dsmoe.reproduce.suite_dir import CURVES, LOSS_BARS, MAX_VIO, PROBE  # noqa: E402

DPI = 150
LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "fontsize": 9}
REFERENCE_NOTE = "larger reference (activated params not matched)"
LOSS_UNIT = "nats/token"


def save(fig: plt.Figure, path: Path) -> Path:
    """Write at 150 dpi, growing the canvas to hold legends placed outside the axes."""
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def figure_title(results: dict, what: str) -> str:
    """The suite's title over what this figure shows, on two lines so neither is cut."""
    return f"{results['title']}\n{what}"


def variant_colours(results: dict) -> dict[str, tuple]:
    """One colour per variant name, in the runner's order, shared by every figure."""
    palette = plt.get_cmap("tab10")
    return {variant["name"]: palette(index % 10) for index, variant in enumerate(results["variants"])}


def line_style(variant: dict) -> str:
    return "-" if variant["matched"] else "--"


def mean_curve(curves: list[list]) -> tuple[np.ndarray, np.ndarray]:
    """The mean over seeds of [[step, value], ...] curves, at the steps every seed logged."""
    by_seed = [{step: value for step, value in curve} for curve in curves if curve]
    if not by_seed:
        return np.array([]), np.array([])
    steps = sorted(set.intersection(*(set(values) for values in by_seed)))
    return np.array(steps, dtype=float), np.array([np.mean([values[s] for values in by_seed]) for s in steps])


def zoomed_limits(lows: list[float], highs: list[float], headroom: float = 0.25) -> tuple[float, float]:
    """Y limits framing [min(lows), max(highs)] with a margin (and `headroom` above for value labels), so small
    differences between variants stay visible."""
    low, high = min(lows), max(highs)
    margin = max(high - low, 0.02 * abs(high), 1e-3) * 0.25
    return low - margin, high + margin + headroom * (high - low + margin)


def variant_bars(ax: plt.Axes, rows: list[dict], values: list, errors: list, colours: dict, missing: str) -> None:
    """One bar per summary row (hatched for unmatched references) labelled with its value, and with its error bar
    and ± where `errors` has one; rows whose value is None get the word `missing` instead of a bar."""
    known = [i for i, value in enumerate(values) if value is not None]
    lows = [values[i] - (errors[i] or 0.0) for i in known]
    highs = [values[i] + (errors[i] or 0.0) for i in known]
    bottom, top = zoomed_limits(lows, highs)
    for i, high in zip(known, highs):
        colour, matched = colours[rows[i]["name"]], rows[i]["matched"]
        ax.bar(i, values[i] - bottom, bottom=bottom, width=0.65, color=colour, alpha=1.0 if matched else 0.45,
               edgecolor=colour, hatch=None if matched else "//", linewidth=1.2)
        label = f"{values[i]:.3f}"
        if errors[i] is not None:
            ax.errorbar(i, values[i], yerr=errors[i], color="black", capsize=4, linewidth=1.2)
            label += f"\n±{errors[i]:.3f}"
        ax.annotate(label, (i, high), xytext=(0, 4), textcoords="offset points", ha="center", va="bottom",
                    fontsize=8)
    for i in sorted(set(range(len(rows))) - set(known)):
        ax.text(i, bottom + 0.1 * (top - bottom), missing, ha="center", fontsize=8, color="grey")
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylim(bottom, top)
    labels = [row["label"] for row in rows]
    slanted = max(map(len, labels), default=0) > 9  # long names would overlap
    ax.set_xticks(range(len(rows)), labels, rotation=25 if slanted else 0, ha="right" if slanted else "center")
    ax.grid(axis="y", alpha=0.3)


def seeds_phrase(rows: list[dict]) -> str:
    """'mean ± std over 3 seeds', or 'one seed (no spread)'."""
    seeds = sorted({row["seeds"] for row in rows if row["seeds"]})
    return "one seed (no spread)" if seeds == [1] else f"mean ± std over {'/'.join(map(str, seeds))} seeds"


def loss_bars(results: dict, rows: list[dict], path: Path) -> Path:
    """Mean validation loss per variant with its seed std, and, in a panel with its own y axis, the paper's value
    (another model scale and data set: compare the orderings, not the heights across panels)."""
    colours = variant_colours(results)
    with_paper = any(row["paper_value"] is not None for row in rows)
    width = min(16, max(5, 1.0 + 0.9 * len(rows)))
    fig, axes = plt.subplots(1, 2 if with_paper else 1, figsize=(width * (2 if with_paper else 1), 4.4),
                             squeeze=False)
    ours = axes[0, 0]
    variant_bars(ours, rows, [row["val_loss_mean"] for row in rows],
                 [row["val_loss_std"] if row["seeds"] > 1 else None for row in rows], colours, "no runs")
    ours.set_title(f"Ours: {results['scale']} scale on {results['data']}, {seeds_phrase(rows)}", fontsize=10)
    ours.set_ylabel(f"validation loss ({LOSS_UNIT}; axis zoomed)")
    if with_paper:
        paper = axes[0, 1]
        variant_bars(paper, rows, [row["paper_value"] for row in rows], [None] * len(rows), colours, "not in paper")
        paper.set_title(f"Paper: {results['paper']['source']}", fontsize=10, wrap=True)
        paper.set_ylabel(f"paper's {results['paper']['metric']} (own axis; zoomed)")
    fig.suptitle(figure_title(results, "validation loss per variant (lower is better)"), fontsize=12)
    if not all(row["matched"] for row in rows):
        handles = [Patch(facecolor="grey", label="matched activated params"),
                   Patch(facecolor="grey", alpha=0.45, hatch="//", label=REFERENCE_NOTE)]
        fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.06), ncol=2, fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def moving_average(steps: np.ndarray, values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The centred mean over `window` consecutive points (the ends, lacking a full window, dropped)."""
    if window <= 1 or len(values) < window:
        return steps, values
    start = (window - 1) // 2
    return steps[start:start + len(values) - window + 1], np.convolve(values, np.ones(window) / window, "valid")


def plot_variant_lines(ax: plt.Axes, results: dict, curve_key: str, markers: bool = False, window: int = 1) -> None:
    """Each variant's seed-mean `curve_key` curve (smoothed over `window` points) on `ax`, named by its label."""
    colours = variant_colours(results)
    for variant in results["variants"]:
        steps, values = moving_average(*mean_curve([run.get(curve_key) or [] for run in variant["runs"]]), window)
        if not steps.size:
            continue
        style = {"color": colours[variant["name"]], "label": variant["label"]}
        if markers:
            ax.plot(steps, values, "o", markersize=5, markeredgecolor="black", markeredgewidth=0.6, **style)
        else:
            ax.plot(steps, values, line_style(variant), linewidth=1.3, **style)


def smoothing_window(results: dict) -> int:
    """About a twenty-fifth of the logged training points: enough to see through step-to-step noise."""
    logged = max((len(run["train_curve"]) for variant in results["variants"] for run in variant["runs"]), default=0)
    return max(1, round(logged / 25))


def frame_tail(ax: plt.Axes, from_step: float) -> None:
    """Zoom `ax` on the steps from `from_step`, with y limits fitted to what is drawn there."""
    visible = [line.get_ydata()[line.get_xdata() >= from_step] for line in ax.get_lines()]
    visible = np.concatenate([values for values in visible if values.size] or [np.zeros(1)])
    low, high = visible.min(), visible.max()
    margin = max(high - low, 1e-3) * 0.08
    ax.set_xlim(from_step - 0.02 * (ax.get_xlim()[1] - from_step), ax.get_xlim()[1])  # room for a point at from_step
    ax.set_ylim(low - margin, high + margin)


def training_curves(results: dict, path: Path) -> Path:
    """Train loss per step (seed mean; dashed for unmatched references) with the validation evaluations as
    points: the whole run, and the second half zoomed in where the variants separate, its train loss smoothed."""
    window = smoothing_window(results)
    fig, (whole, tail) = plt.subplots(1, 2, figsize=(13, 4.6))
    for ax, smoothing in ((whole, 1), (tail, window)):
        plot_variant_lines(ax, results, "train_curve", window=smoothing)
        plot_variant_lines(ax, results, "val_curve", markers=True)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    last_step = max((step for line in whole.get_lines() for step in line.get_xdata()), default=1.0)
    frame_tail(tail, last_step / 2)
    whole.set_title("Whole run")
    smoothed = f"; train loss: moving average of {window} points" if window > 1 else ""
    tail.set_title(f"Second half (steps ≥ {last_step / 2:g}), zoomed{smoothed}", fontsize=10)
    whole.set_ylabel(f"loss ({LOSS_UNIT})")
    fig.suptitle(figure_title(results, "training curves (mean over seeds)"), fontsize=12)
    variant_handles = [line for line in tail.get_lines() if line.get_linestyle() != "None"]
    kinds = [plt.Line2D([], [], color="grey", label="train loss"),
             plt.Line2D([], [], color="grey", marker="o", linestyle="None", markeredgecolor="black",
                        label="validation loss")]
    tail.legend(handles=variant_handles + kinds, **LEGEND_OUTSIDE)
    fig.tight_layout()
    return save(fig, path)


def has_max_vio(results: dict) -> bool:
    return any(run.get("max_vio") for variant in results["variants"] for run in variant["runs"])


def max_vio_curves(results: dict, path: Path) -> Path:
    """MaxVio of the expert load per step (Wang et al. 2024: (max load - mean load) / mean load over the
    experts), seed mean per variant; 0 is a perfectly balanced load."""
    fig, ax = plt.subplots(figsize=(9, 4.4))
    plot_variant_lines(ax, results, "max_vio")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("MaxVio (max / mean expert load − 1)")
    ax.set_title(figure_title(results, "expert load imbalance over training (mean over seeds; 0 is balanced)"),
                 fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(**LEGEND_OUTSIDE)
    return save(fig, path)


def probe_curves(results: dict, path: Path) -> Path:
    """The suite's probe (e.g. the paper's Figure 4): one marked line per variant, named by its label."""
    probe = results["probe"]
    colours = variant_colours(results)
    by_name = {variant["name"]: variant for variant in results["variants"]}
    fig, ax = plt.subplots(figsize=(8, 4.4))
    for name, points in probe["curves"].items():
        variant = by_name.get(name, {"label": name, "matched": True})
        xs, ys = zip(*points) if points else ((), ())
        ax.plot(xs, ys, "o" + line_style(variant), color=colours.get(name), label=variant["label"], linewidth=1.5)
    if all(float(x).is_integer() for points in probe["curves"].values() for x, _ in points):
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel(probe["x_label"])
    ax.set_ylabel(probe["y_label"])
    ax.set_title(probe["title"], fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(**LEGEND_OUTSIDE)
    return save(fig, path)


def draw_figures(results: dict, rows: list[dict], out_dir: Path) -> dict[str, str]:
    """Every figure the results call for, written into `out_dir`; returns {file name: caption} in report order."""
    figures = {LOSS_BARS: "Validation loss per variant, ours beside the paper's", CURVES: "Training curves"}
    loss_bars(results, rows, out_dir / LOSS_BARS)
    training_curves(results, out_dir / CURVES)
    if has_max_vio(results):
        max_vio_curves(results, out_dir / MAX_VIO)
        figures[MAX_VIO] = "Expert load imbalance (MaxVio) over training"
    if results.get("probe"):
        probe_curves(results, out_dir / PROBE)
        figures[PROBE] = results["probe"]["title"]
    return figures
