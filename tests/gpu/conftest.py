"""The GPU tests: marked `gpu`, skipped without CUDA, and then the session ends saying so in one line."""

import torch

from train.tiny import one_torch_thread  # noqa: F401


def pytest_terminal_summary(terminalreporter) -> None:
    skipped = [report for report in terminalreporter.stats.get("skipped", []) if "gpu" in report.keywords]
    if skipped and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA"
        terminalreporter.write_line(f"GPU tests: {len(skipped)} skipped, not passed: torch {torch.__version__} "
                                    f"({build}) finds no CUDA GPU here; run them on one with -m gpu")
