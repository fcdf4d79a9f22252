"""A run's metrics.jsonl: an append-only log of one JSON record per step and per evaluation, that survives
resumes and kills (the file's place is RunDir.metrics_path)."""

from __future__ import annotations

import json
from pathlib import Path

from dsmoe.atomic import atomic_file


class MetricsLog:
    """The run's metrics.jsonl (RunDir.metrics_path), appended one whole line per record. On resume, records after
    the resumed step are dropped (they are recomputed), with any torn last line, by an atomic rewrite, so the log
    always matches the checkpoint."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is not None and self.path.exists():
            kept = [record for record in read_metrics(self.path) if record.get("step", -1) <= resume_step]
            with atomic_file(self.path) as temporary:
                temporary.write_text("".join(json.dumps(record) + "\n" for record in kept))
        self.file = self.path.open("ab", buffering=0)

    def write(self, record: dict) -> None:
        line = memoryview((json.dumps(record) + "\n").encode())
        while line:  # one write(2) in practice; a short one (a full disk) is finished or raises, never left mid-file
            line = line[self.file.write(line):]

    def close(self) -> None:
        self.file.close()


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl. An unterminated last line is left out (a write cut short by a kill or a full
    disk, or one still under way); a complete line that is not a JSON object is an error naming file and line."""
    data = Path(path).read_bytes()
    records = []
    for number, line in enumerate(data[:data.rfind(b"\n") + 1].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:  # bad JSON or bad UTF-8
            raise ValueError(f"{path} line {number} is not a JSON record ({error}); the file is damaged: delete "
                             "that line to go on") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path} line {number} is not a JSON record (a {type(record).__name__}, not an object); "
                             "the file is damaged: delete that line to go on")
        records.append(record)
    return records
