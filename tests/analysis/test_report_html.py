"""The report file on its own: self-contained, escaped, the numbers embedded, per-layer blocks, written atomically."""

import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dsmoe.analysis.report_html import Figure, Section, Table, write_report  # noqa: E402


def png(path):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(path)
    plt.close(fig)
    return path


def report(tmp_path, numbers=None):
    sections = [Section("a", "A <b>", "intro & more", [Table("t", ["x", "y"], [[1, 0.123456], ["<i>", True]])]),
                Section("b", "B", per_layer={1: [Figure("f1", png(tmp_path / "1.png"))],
                                             2: [Figure("f2", png(tmp_path / "2.png"), "cap")]})]
    return write_report(tmp_path / "report.html", "T", "sub", sections, [1, 2], numbers or {"x": "</script>"})


def test_nothing_is_fetched_from_elsewhere(tmp_path):
    page = report(tmp_path).read_text()
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "<link" not in page and "<script src" not in page and "http" not in page


def test_text_is_escaped_and_numbers_formatted(tmp_path):
    page = report(tmp_path).read_text()
    assert "A &lt;b&gt;" in page and "intro &amp; more" in page and "<td>&lt;i&gt;</td>" in page
    assert '<td class="num">0.1235</td>' in page and '<td class="num">1</td>' in page


def test_embedded_numbers_round_trip_even_with_a_closing_script_tag(tmp_path):
    numbers = {"x": "</script><b>", "y": [1.5, None]}
    page = report(tmp_path, numbers).read_text()
    embedded = re.search(r'<script type="application/json" id="numbers">(.*?)</script>', page, re.S).group(1)
    assert json.loads(embedded) == numbers


def test_only_the_first_layers_blocks_show_without_script(tmp_path):
    page = report(tmp_path).read_text()
    assert '<div data-layer="1">' in page and '<div data-layer="2" hidden>' in page
    assert page.count("data:image/png;base64,") == 2


def test_written_atomically_with_no_temporaries_left(tmp_path):
    report(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["1.png", "2.png", "report.html"]
