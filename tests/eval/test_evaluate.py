"""Validation loss and bits per byte match a by-hand computation; domains are scored apart and pooled by tokens."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dsmoe.data import DataConfig, prepare_data, token_byte_lengths, train_tokenizer
from dsmoe.eval import evaluate_domains, evaluate_tokens
from train.tiny import corpus_text, tiny_model

TEXT = "The café served crème brûlée to naïve guests; 世界 was written on the wall.\n"


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([corpus_text() + TEXT * 3], vocab_size=300)


def test_bits_per_byte_is_total_nll_over_ln2_over_the_utf8_bytes_of_the_predicted_tokens(tokenizer):
    text = TEXT * 2
    while (len(tokenizer.encode(text).ids) - 1) % 3:  # three windows cover every token after the first
        text += "."
    ids = tokenizer.encode(text).ids
    seq_len = (len(ids) - 1) // 3
    model = tiny_model().eval()
    result = evaluate_tokens(model, np.array(ids, dtype=np.uint16), seq_len, batch_size=2,
                             token_bytes=token_byte_lengths(tokenizer))

    nll = 0.0
    with torch.no_grad():
        for start in range(0, 3 * seq_len, seq_len):
            window = torch.tensor(ids[start:start + seq_len + 1])
            logits = model(window[None, :-1]).logits[0]
            nll += F.cross_entropy(logits, window[1:], reduction="sum").item()
    first_token = tokenizer.decode(ids[:1])  # only the first token is never predicted
    predicted_bytes = len(text.encode()) - len(first_token.encode())
    assert tokenizer.decode(ids) == text and text.startswith(first_token)
    assert predicted_bytes > len(text) - len(first_token)  # multi-byte characters count as their bytes
    assert result.tokens == len(ids) - 1 and result.n_bytes == predicted_bytes
    assert result.loss == pytest.approx(nll / (len(ids) - 1), rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(result.loss))
    assert result.bits_per_byte == pytest.approx(nll / math.log(2) / predicted_bytes, rel=1e-5)


def test_two_files_give_two_domains_and_a_token_weighted_pooled_loss(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = corpus_text()
    (corpus / "plays.txt").write_text(text[:6000])
    (corpus / "recipes.txt").write_text(TEXT * 80)
    data = prepare_data(DataConfig(path=str(corpus), seq_len=32, vocab_size=300, cache_dir=str(tmp_path / "cache")),
                        tmp_path / "tokenizer.json", 512)
    model, token_bytes = tiny_model().eval(), token_byte_lengths(data.tokenizer)
    val = {domain: data.val.domain_tokens(domain) for domain in data.val.domains}
    result = evaluate_domains(model, val, seq_len=32, batch_size=4, token_bytes=token_bytes)

    assert list(result.per_domain) == ["plays", "recipes"]
    for domain, tokens in val.items():
        alone = evaluate_tokens(model, tokens, 32, 4, token_bytes)
        assert (result.per_domain[domain].loss, result.per_domain[domain].tokens) == (alone.loss, alone.tokens)
    parts = result.per_domain.values()
    assert result.tokens == sum(part.tokens for part in parts)
    assert result.loss == pytest.approx(sum(part.loss * part.tokens for part in parts) / result.tokens)
    assert result.bits_per_byte == pytest.approx(
        sum(part.bits_per_byte * part.n_bytes for part in parts) / sum(part.n_bytes for part in parts))
    assert result.per_domain["plays"].loss != result.per_domain["recipes"].loss
