"""Shared fixtures of the data tests: a small multi-script sample text and a small tokenizer fit to it."""

import pytest

from dsmoe.data import train_tokenizer

SAMPLE_TEXT = "".join(
    f"line {i}: the quick brown fox jumps over the lazy dog; naïve café {i * i}\n"
    f"    def f_{i}(x):  return x ** {i}  # Grüße, 世界\n\n"
    for i in range(200)
)


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer([SAMPLE_TEXT], vocab_size=400)
