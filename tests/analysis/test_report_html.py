"""The report file on its own: self-contained, escaped, the numbers embedded, per-layer blocks, written atomically."""

import base64
import json
import re

from tests.analysis.synthetic_report import NUMBERS, synthetic_report


def embedded_numbers(page: str):
    return json.loads(re.search(r'<script type="application/json" id="numbers">(.*?)</script>', page, re.S).group(1))


def test_nothing_is_fetched_from_elsewhere(tmp_path):
    page = synthetic_report(tmp_path).read_text()
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    outside_data = re.sub(r'"data:[^"]*"', '""', page)  # base64 may spell "http" by chance
    assert "<link" not in page and "<script src" not in page and "http" not in outside_data


def test_text_is_escaped(tmp_path):
    page = synthetic_report(tmp_path).read_text()
    assert "<title>Expert &lt;analysis&gt;</title>" in page and "Load &lt;b&gt;balance&lt;/b&gt;" in page
    assert "intro &amp; more" in page and "<td>&lt;i&gt;none&lt;/i&gt;</td>" in page and "<i>" not in page


def test_numbers_are_formatted_and_right_aligned_numpy_ones_too(tmp_path):
    page = synthetic_report(tmp_path).read_text()
    for text in ("0.1235", "0.5", "16,832", "1,000"):
        assert f'<td class="num">{text}</td>' in page
    assert "<td>True</td>" in page and '<th class="num">CV</th>' in page and "<th>dead</th>" in page


def test_embedded_numbers_round_trip_and_nothing_in_them_can_end_the_element(tmp_path):
    page = synthetic_report(tmp_path).read_text()
    assert embedded_numbers(page) == NUMBERS
    assert page.count("</script>") == 2 and "<!--" not in page


def test_the_download_link_is_the_numbers(tmp_path):
    page = synthetic_report(tmp_path).read_text()
    encoded = re.search(r'download="numbers.json" href="data:application/json;base64,([^"]*)"', page).group(1)
    assert json.loads(base64.b64decode(encoded)) == NUMBERS


def test_only_the_first_layers_blocks_show_without_script(tmp_path):
    page = synthetic_report(tmp_path).read_text()
    assert page.count('<div data-layer="1">') == 2 and page.count('<div data-layer="2" hidden>') == 2
    assert page.count("data:image/png;base64,") == 2 and '<span class="current-layer">1</span>' in page


def test_every_section_is_in_the_contents(tmp_path):
    page = synthetic_report(tmp_path).read_text()
    assert '<a href="#load">' in page and '<section id="load">' in page
    assert '<a href="#tokens">' in page and '<section id="tokens">' in page


def test_written_atomically_with_no_temporaries_left(tmp_path):
    synthetic_report(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["figures", "report.html"]


def test_non_finite_numbers_become_null_in_the_analysis_json():
    from dsmoe.analysis.report import finite

    assert finite({"a": [1.0, float("nan")], "b": {"c": float("inf")}, "d": "x"}) == {"a": [1.0, None],
                                                                                      "b": {"c": None}, "d": "x"}
