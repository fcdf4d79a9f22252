"""The reproduction report: summary numbers against hand-computed ones, the ordering verdict when it agrees and when
it does not, the one-seed wording, and report.md with every figure it links, replaced cleanly by a second write."""

import copy
import math
import re

import pytest

from dsmoe.reproduce.suite_report import (FIGURES, REPORT, ordering_verdict, params_section, summary_rows,
                                          write_report)


def run(seed: int, val_loss: float, max_vio: bool) -> dict:
    steps = [0, 10, 20, 30]
    return {"seed": seed, "val_loss": val_loss, "val_bpb": val_loss / math.log(2), "steps": 30, "train_minutes": 0.1,
            "train_curve": [[step, val_loss + 2.0 / (1 + step)] for step in steps],
            "val_curve": [[15, val_loss + 0.1], [30, val_loss]],
            "max_vio": [[step, 1.0 / (1 + step)] for step in steps] if max_vio else []}


def variant(name: str, losses: list[float], matched: bool = True, max_vio: bool = True,
            paper_value: float | None = None) -> dict:
    return {"name": name, "label": name.title(), "paper_value": paper_value, "matched": matched,
            "description": f"the {name} variant",
            "params": {"total": 1000, "activated": 500, "ffn_activated": 200 if matched else 300},
            "runs": [run(seed, loss, max_vio) for seed, loss in enumerate(losses)]}


@pytest.fixture
def results() -> dict:
    """Three variants x two seeds: dense without MaxVio, a larger unmatched reference, and a probe."""
    return {"suite": "table1", "title": "Synthetic Table 1", "scale": "tiny", "budget": "steps", "budget_value": 30,
            "data": "shakespeare", "command": "dsmoe reproduce table1 --scale tiny --seeds 2",
            "paper": {"source": "a synthetic paper table", "metric": "validation loss"},
            "expected_order": ["moe", "dense"],
            "variants": [variant("dense", [2.0, 2.2], max_vio=False, paper_value=2.06),
                         variant("moe", [1.8, 1.9], paper_value=1.93),
                         variant("moe_x1.5", [1.7, 1.9], matched=False)],
            "probe": {"title": "Disabling top experts", "x_label": "disabled top routed experts",
                      "y_label": "validation loss", "curves": {"moe": [[0, 1.8], [1, 2.0]],
                                                               "moe_x1.5": [[0, 1.7], [1, 1.8]]}}}


def test_summary_rows_give_the_mean_and_sample_std_over_seeds(results):
    dense = summary_rows(results)[0]
    assert dense["seeds"] == 2 and dense["paper_value"] == 2.06 and dense["matched"]
    assert dense["val_loss_mean"] == pytest.approx(2.1)
    assert dense["val_loss_std"] == pytest.approx(math.sqrt(0.02))  # ((0.1)^2 + (0.1)^2) / (2 - 1)
    assert dense["val_bpb_mean"] == pytest.approx(2.1 / math.log(2))


def test_the_parameters_verdict_holds_each_stated_activated_ffn_apart(results):
    dense, moe, _ = results["variants"]
    dense["activated_f"], moe["activated_f"], moe["params"] = 1, 2, {**moe["params"], "ffn_activated": 400}
    lines = params_section(summary_rows(results))
    assert "The matched variants at 1F (Dense) activate the same FFN parameters per token (200)." in lines
    assert "The matched variants at 2F (Moe) activate the same FFN parameters per token (400)." in lines
    moe["activated_f"] = 1
    unequal = "The matched variants at 1F (Dense, Moe) do NOT activate equal FFN parameters: [200, 400]."
    assert unequal in params_section(summary_rows(results))


def test_an_ordering_that_agrees_says_so_with_its_significance(results):
    verdict = ordering_verdict(results)
    assert verdict["exact"] and verdict["pair_agreement"] == 1.0
    spread = math.sqrt(0.02) + math.sqrt(0.005)
    assert verdict["adjacent"][0]["words"] == f"moe < dense: agrees, gap 0.250 > spread {spread:.3f} (significant)"


def test_an_ordering_that_disagrees_counts_the_pairs_it_gets_wrong(results):
    results["expected_order"] = ["dense", "moe", "moe_x1.5", "not_run"]
    verdict = ordering_verdict(results)
    assert verdict["our_order"] == ["moe_x1.5", "moe", "dense"] and not verdict["exact"]
    assert (verdict["concordant_pairs"], verdict["pairs"]) == (0, 3) and verdict["missing"] == ["not_run"]
    assert verdict["adjacent"][0]["words"].startswith("dense < moe: disagrees, gap 0.250")
    spread = math.sqrt(0.005) + math.sqrt(0.02)
    assert verdict["adjacent"][1]["words"] == (f"moe < moe_x1.5: disagrees, gap 0.050 <= spread {spread:.3f} "
                                               "(within the seed spread)")


def test_one_seed_has_no_spread_to_compare_against(results):
    for each in results["variants"]:
        each["runs"] = each["runs"][:1]
    note = ordering_verdict(results)["adjacent"][0]
    assert note["words"] == "moe < dense: agrees, gap 0.200; one seed: no spread measured"
    assert summary_rows(results)[0]["val_loss_std"] == 0.0


def linked_figures(report_text: str) -> set[str]:
    return set(re.findall(rf"\]\(({FIGURES}/[^)]+\.png)\)", report_text))


def test_the_report_links_every_figure_it_writes_and_a_second_write_replaces_the_first(results, tmp_path):
    (tmp_path / "results.json").write_text("{}")
    path = write_report(results, tmp_path)
    expected = {f"{FIGURES}/{name}.png" for name in ("loss_bars", "curves", "max_vio", "probe")}
    assert path == tmp_path / REPORT and linked_figures(path.read_text()) == expected
    assert all((tmp_path / figure).stat().st_size > 0 for figure in expected)
    second = copy.deepcopy(results)
    second["probe"], second["title"] = None, "Second write"
    write_report(second, tmp_path)
    assert linked_figures(path.read_text()) == expected - {f"{FIGURES}/probe.png"}
    assert not (tmp_path / FIGURES / "probe.png").exists() and "Second write" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([REPORT, FIGURES, "results.json"])


def test_a_failure_while_drawing_leaves_the_previous_report_as_it_was(results, tmp_path, monkeypatch):
    path = write_report(results, tmp_path)
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def draw_then_fail(results, rows, out_dir):
        (out_dir / "curves.png").write_bytes(b"half drawn")
        raise RuntimeError("out of memory while drawing")

    monkeypatch.setattr("dsmoe.reproduce.suite_report.draw_figures", draw_then_fail)
    with pytest.raises(RuntimeError, match="while drawing"):
        write_report(results, tmp_path)
    assert {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert path.is_file()
