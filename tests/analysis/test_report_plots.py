"""What the report's plots and captions show at a glance, read from the figures the sections draw: axes that start
where the quantity does, a chance level, noise bars, and a single comparison drawn as labelled bars."""

import copy
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.container import ErrorbarContainer

from dsmoe.analysis import charts
from dsmoe.analysis.report_probe_sections import (NOISE_SE, disabling_section, noise_verdict, probe_measure,
                                                  shared_section, stability_section)
from dsmoe.analysis.report_sections import domains_section


@pytest.fixture
def drawn(monkeypatch):
    """Each chart's figure by file name, kept open (not saved) so a test can read its axes."""
    figures = {}

    def keep(fig, path):
        figures[Path(path).name] = fig
        return Path(path)

    monkeypatch.setattr(charts, "save", keep)
    yield figures
    for fig in figures.values():
        plt.close(fig)


def line_labelled(ax, label: str):
    return next(line for line in ax.get_lines() if line.get_label() == label)


def test_the_nmi_axis_starts_at_zero_and_shows_the_chance_level(analysis, drawn, tmp_path):
    domains_section(analysis.numbers, tmp_path)
    ax = drawn["domain_nmi.png"].axes[0]
    layers = analysis.numbers["layers"].values()
    chance = line_labelled(ax, "chance (domains shuffled)").get_ydata()
    assert ax.get_ylim()[0] == 0.0
    assert list(chance) == [stats["domains"]["nmi_shuffled"] for stats in layers]
    assert ax.get_ylim()[1] >= max(stats["domains"]["nmi"] for stats in layers)


def test_a_single_earlier_checkpoint_is_drawn_as_labelled_bars_from_zero_to_one(analysis, drawn, tmp_path):
    section = stability_section(analysis.numbers, tmp_path)
    ax = drawn["routing_stability.png"].axes[0]
    changes = analysis.numbers["stability"][0]["layers"]
    assert ax.get_ylim() == (0.0, 1.0)
    assert len(ax.patches) == 2 * len(changes)  # expert set and top-1, per layer
    labels = {text.get_text() for text in ax.texts}
    assert {f"{layer['changed_share']:.3f}" for layer in changes.values()} <= labels
    assert "One other checkpoint is compared (step 3)" in section.intro


def test_several_earlier_checkpoints_are_curves_from_zero_to_one(analysis, drawn, tmp_path):
    numbers = copy.deepcopy(analysis.numbers)
    numbers["stability"].append({**numbers["stability"][0], "step": 4})
    section = stability_section(numbers, tmp_path)
    ax = drawn["routing_stability.png"].axes[0]
    assert ax.get_ylim() == (0.0, 1.0) and not ax.patches
    curves = {container.get_label(): container.lines[0] for container in ax.containers}
    assert list(curves) == ["layer 1", "layer 2"] and list(curves["layer 1"].get_xdata()) == [3, 4]
    assert "2 other checkpoints are compared (steps 3, 4)" in section.intro


def test_the_disabling_curve_carries_noise_bars_of_two_standard_errors(analysis, drawn, tmp_path):
    section = disabling_section(analysis.numbers, tmp_path)
    points = analysis.numbers["expert_disabling"]["run"]
    ax = drawn["expert_disabling.png"].axes[0]
    (bars,) = [container for container in ax.containers if isinstance(container, ErrorbarContainer)]
    spans = [segment[:, 1] for segment in bars.lines[2][0].get_segments()]
    for point, (low, high) in zip(points, spans):
        assert (high - low) / 2 == pytest.approx(NOISE_SE * point["rise_se"])
        assert (high + low) / 2 == pytest.approx(point["rise"])
    assert list(line_labelled(ax, "no change").get_ydata()) == [0.0, 0.0]
    figure, table = section.blocks
    assert f"± {NOISE_SE} standard errors" in figure.caption and "noise" in table.columns[-1]
    assert all(row[-1] in ("yes", "no") for row in table.rows[1:])


def test_the_verdict_names_the_rises_beyond_their_noise():
    curves = {"a": [{"k": 0, "rise": 0.0, "rise_se": 0.0}, {"k": 1, "rise": 0.05, "rise_se": 0.01},
                    {"k": 2, "rise": -0.003, "rise_se": 0.002}]}
    assert noise_verdict(curves) == "Beyond noise: a at k=1. Within it (not told from no change): a at k=2."
    curves["a"][1]["rise_se"] = 0.1
    assert noise_verdict(curves).startswith("No rise exceeds its noise")


def test_the_probes_say_how_their_loss_is_measured_and_why_dsmoe_eval_differs(analysis, tmp_path):
    numbers = analysis.numbers
    counts = numbers["tokens_per_domain"].values()
    probed = sum(count["probe_scored"] for count in counts)
    measure = probe_measure(numbers)
    assert f"over {probed // numbers['seq_len']:,} windows of {numbers['seq_len']} tokens ({probed:,} tokens" in measure
    assert f"--probe-batches={numbers['probe_batches']} batches of {numbers['batch_size']} windows" in measure
    assert f"dsmoe eval on the same text predicts all {sum(c['eval_scored'] for c in counts):,} tokens" in measure
    assert probed == numbers["expert_disabling"]["run"][0]["windows"] * numbers["seq_len"]
    removed = shared_section(numbers, tmp_path).blocks[-1]
    assert measure in removed.caption and removed.columns[-2:] == [f"noise (± {NOISE_SE} SE)", "beyond noise"]
