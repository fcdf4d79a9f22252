"""metrics.jsonl survives a write cut short: a torn last line is left out when read and cut away on resume; a
damaged line before it is an error naming the file and the line."""

import json

import pytest

from dsmoe.runs.metrics_log import MetricsLog, read_metrics

RECORDS = [{"step": 1, "loss": 6.5}, {"step": 2, "loss": 6.25}, {"step": 3, "loss": 6.0}]
TORN = '{"step": 4, "loss": 5.'


def write_log(path, lines: str):
    path.write_text("".join(json.dumps(record) + "\n" for record in RECORDS) + lines)
    return path


def test_a_torn_last_line_is_left_out_when_read(tmp_path):
    assert read_metrics(write_log(tmp_path / "metrics.jsonl", TORN)) == RECORDS


def test_resuming_cuts_the_torn_last_line_and_the_records_after_the_checkpoint(tmp_path):
    path = write_log(tmp_path / "metrics.jsonl", TORN)
    log = MetricsLog(path, resume_step=2)
    log.write({"step": 3, "loss": 6.0})
    log.close()
    assert path.read_text() == "".join(json.dumps(record) + "\n" for record in RECORDS)


@pytest.mark.parametrize("damage", ['{"step": 2, "lo\n', "\x00\x00\x00\n", "[1, 2]\n"], ids=["cut", "zeros", "list"])
def test_a_damaged_line_before_the_last_is_an_error_naming_file_and_line(damage, tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n" + damage + json.dumps(RECORDS[1]) + "\n")
    with pytest.raises(ValueError, match=f"^{path} line 2 is not a JSON record .*delete that line to go on$"):
        read_metrics(path)
    with pytest.raises(ValueError, match=f"^{path} line 2 is not a JSON record"):
        MetricsLog(path, resume_step=1)
