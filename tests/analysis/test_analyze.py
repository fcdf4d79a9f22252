"""`dsmoe analyze` end to end on a tiny trained run: every output, the numbers' consistency, reuse and refusals."""

import contextlib
import json

import numpy as np
import pytest

from dsmoe.analysis.analyze import analyze_run
from dsmoe.analysis.domain_data import routed_summary
from dsmoe.analysis.report import NUMBERS, REPORT
from dsmoe.runs import RunDir
from dsmoe.cli.main import main
from tests.train.tiny import one_thread

SECTION_PNGS = ["load_heatmap.png", "load_over_training.png", "loss_curve.png", "domain_nmi.png", "domain_top10.png",
                "vocabulary_specialisation.png", "shared_vs_routed.png", "routing_stability.png",
                "expert_disabling.png"]


def test_every_plot_the_json_and_the_report_are_written(analysis):
    out = analysis.out_dir
    assert out == RunDir(analysis.numbers["run"]).analysis_report_dir
    layers = analysis.numbers["moe_layers"]
    per_layer = [f"{kind}_layer{layer}.png" for layer in layers
                 for kind in ("domain_share", "coactivation", "redundancy_outputs", "redundancy_weights")]
    for name in SECTION_PNGS + per_layer:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert json.loads((out / NUMBERS).read_text()) == analysis.numbers
    page = (out / REPORT).read_text()
    assert page.count("data:image/png;base64,") == len(SECTION_PNGS) + len(per_layer)


def test_numbers_agree_with_each_other(analysis):
    numbers = analysis.numbers
    assert sorted(numbers["domains"]) == ["bible", "c_headers", "prose_docs", "python_code"]
    for layer in numbers["moe_layers"]:
        stats = numbers["layers"][str(layer)]
        load = np.array(stats["load"]["tokens_per_expert"])
        assert load.sum() == numbers["n_tokens"] * numbers["top_k"]  # dropless: every token kept its K pairs
        assert np.allclose(np.array(stats["domains"]["share"]).sum(axis=1), 1.0)
        assert 0.0 <= stats["domains"]["nmi"] <= 1.0
        assert [expert["load"] for expert in stats["experts"]] == load.tolist()
    counts = numbers["tokens_per_domain"]
    assert list(counts) == numbers["domains"]
    assert sum(count["routed"] for count in counts.values()) == numbers["n_tokens"]
    assert all(0 <= count["read"] - count["routed"] < numbers["seq_len"] for count in counts.values())
    assert [entry["step"] for entry in numbers["stability"]] == [3]  # the other kept checkpoint
    disabling = numbers["expert_disabling"]["run"]
    assert [point["k"] for point in disabling] == [0, 1, 2]  # 4 experts, top-2: at most 2 can go


def test_disabling_zero_experts_is_the_plain_loss_and_disabling_changes_it(analysis):
    disabling = next(iter(analysis.numbers["expert_disabling"].values()))
    probe = analysis.numbers["shared_expert_probe"]
    assert disabling[0]["loss"] == probe["loss"]  # k = 0 disables nothing: the very same evaluation
    assert disabling[1]["loss"] != disabling[0]["loss"]
    assert probe["loss_without_shared"] != probe["loss"]


def test_the_printed_and_the_reported_token_counts_are_one_sentence_naming_the_domains(analysis, tmp_path, capsys):
    numbers = analysis.numbers
    summary = routed_summary(numbers["tokens_per_domain"], numbers["seq_len"])
    assert f"{sum(count['read'] for count in numbers['tokens_per_domain'].values()):,} tokens read" in summary
    assert f"{numbers['n_tokens']:,} routed in {numbers['n_tokens'] // numbers['seq_len']:,} windows" in summary
    with one_thread():
        assert main(["analyze", "--run", numbers["run"], "--out", str(tmp_path), "--no-probes"]) == 0
    printed = capsys.readouterr().out
    assert f"domains: {', '.join(numbers['domains'])}\n  tokens: {summary}\n" in printed
    overview = (analysis.out_dir / REPORT).read_text().split('id="load"')[0]
    assert summary in overview and ", ".join(numbers["domains"]) in overview
    assert all(f"<td>{domain}</td>" in overview for domain in numbers["domains"])  # the Domains table


def test_the_trace_is_recorded_once_and_reused(analysis, tmp_path):
    run = RunDir(analysis.numbers["run"])
    traces = sorted(path.name for path in run.traces_dir.iterdir())
    assert len(traces) == 2  # the analysed checkpoint and the other one, for stability
    stamps = {name: (run.traces_dir / name / "meta.json").stat().st_mtime_ns for name in traces}
    with one_thread():
        again = analyze_run(run.path, out=tmp_path / "again", probes=False)
    assert sorted(path.name for path in run.traces_dir.iterdir()) == traces
    assert {name: (run.traces_dir / name / "meta.json").stat().st_mtime_ns for name in traces} == stamps
    assert again.numbers["layers"] == analysis.numbers["layers"]
    assert "expert_disabling" not in again.numbers


def test_an_output_directory_with_other_files_is_refused_before_any_work(analysis, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"holds mine\.txt and is not an earlier analysis"):
        analyze_run(analysis.numbers["run"], out=tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["mine.txt"]


def test_a_file_of_the_users_in_an_earlier_analysis_is_kept_and_named(analysis, tmp_path):
    out = tmp_path / "analysis"
    with one_thread():
        analyze_run(analysis.numbers["run"], out=out, probes=False)
    written = sorted(path.name for path in out.iterdir())
    assert "files.json" in written and "numbers.json" in written
    (out / "notes.txt").write_text("my notes")
    with pytest.raises(ValueError, match=r"holds notes\.txt, which dsmoe analyze did not write"):
        analyze_run(analysis.numbers["run"], out=out, probes=False)
    assert (out / "notes.txt").read_text() == "my notes" and sorted(path.name for path in out.iterdir()) == sorted(
        [*written, "notes.txt"])
    (out / "notes.txt").unlink()
    with one_thread():  # its own earlier files alone: replaced
        analyze_run(analysis.numbers["run"], out=out, probes=False)
    assert sorted(path.name for path in out.iterdir()) == written


def test_cli_refusals_name_the_input(analysis, tmp_path, capsys):
    def refusal(*args: str) -> str:
        with pytest.raises(SystemExit) if "--max-tokens" in args else contextlib.nullcontext() as usage:
            code = main(["analyze", *args])
        assert (usage.value.code if usage else code) == 2
        return capsys.readouterr().err

    assert "is not a run directory" in refusal("--run", str(tmp_path / "nope"))
    assert "no checkpoint of step 5 (it has: [3, 6])" in refusal("--run", analysis.numbers["run"], "--checkpoint", "5")
    assert "--max-tokens: 0 must be >= 1" in refusal("--run", analysis.numbers["run"], "--max-tokens", "0")


def test_compare_puts_every_runs_disabling_curve_on_one_plot(analysis, tmp_path):
    from tests.analysis.analysed_run import train_domains_run

    gshard = train_domains_run(tmp_path / "gshard", steps=2, model__router="gshard", model__n_shared_experts=0)
    with one_thread():
        compared = analyze_run(analysis.numbers["run"], compare=(gshard,), out=tmp_path / "out", probe_batches=1)
    curves = compared.numbers["expert_disabling"]
    assert list(curves) == [analysis.numbers["run"], str(gshard)]  # both directories are named "run"
    assert all(points[0]["k"] == 0 for points in curves.values())
    assert (tmp_path / "out" / "expert_disabling.png").is_file()
    assert RunDir(gshard).traces_dir.is_dir()  # the compared run's own trace, in its own run directory


def test_a_dense_run_is_refused_naming_it(tmp_path):
    from tests.analysis.analysed_run import train_domains_run

    dense = train_domains_run(tmp_path, steps=2, model__moe_layer_indices=[])
    with pytest.raises(ValueError, match="is a dense model .no MoE layer.: it has no experts to analyse"):
        analyze_run(dense)
    assert not RunDir(dense).traces_dir.exists()
