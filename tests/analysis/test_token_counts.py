"""How many tokens each part of an analysis counts, and the sentence that says why they differ."""

import numpy as np

from dsmoe.analysis.domain_data import routed_summary, token_counts

SEQ_LEN = 32


def test_each_count_follows_from_the_windows_of_its_part():
    counts = token_counts({"a": np.zeros(100), "b": np.zeros(70), "c": np.zeros(32)}, SEQ_LEN, probe_windows=2)
    # a: 3 routed windows (4 tokens over); (100 - 1) // 32 = 3 scorable windows, 2 probed; eval predicts all but one
    assert counts["a"] == {"read": 100, "routed": 96, "probe_scored": 64, "eval_scored": 99}
    assert counts["b"] == {"read": 70, "routed": 64, "probe_scored": 64, "eval_scored": 69}
    # one window routed, but no token after it to predict: no probe or eval scores it
    assert counts["c"] == {"read": 32, "routed": 32, "probe_scored": 0, "eval_scored": 0}


def test_the_summary_names_both_counts_and_why_they_differ():
    counts = token_counts({"a": np.zeros(100), "b": np.zeros(70)}, SEQ_LEN, probe_windows=2)
    assert routed_summary(counts, SEQ_LEN) == ("170 tokens read, 160 routed in 5 windows of 32: the last 10 (the end "
                                               "of each domain too short to fill a window) are not routed")
    assert routed_summary(token_counts({"a": np.zeros(64)}, SEQ_LEN, 2), SEQ_LEN) == \
        "64 tokens read and routed, in 2 windows of 32"
