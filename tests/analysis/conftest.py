import pytest

from tests.analysis.analysed_run import analysed


@pytest.fixture(scope="session")
def analysis(tmp_path_factory):
    """The analysis of a tiny four-domain run (tests/analysis/analysed_run.py), made once for the session."""
    return analysed(tmp_path_factory)
