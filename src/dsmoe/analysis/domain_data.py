"""The text an analysis routes, as token ids per domain, tokenized with the analysed run's own tokenizer.

    None       the run's validation split (of the corpus it recorded, refused if that text changed)
    "domains"  the held-out text of the built-in four-domain corpus (bible, prose_docs, python_code, c_headers)
    PATH       every file of PATH (a file, directory, glob or built-in corpus), all of its text, one domain per file
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from dsmoe.data import prepare_data, resolve_corpus, tokenize_whole_files
from dsmoe.data.batches import count_windows
from dsmoe.data.tokens import tokenize_split
from dsmoe.runs import RunConfig

DOMAINS_CORPUS = "domains"


@dataclass(frozen=True)
class DomainData:
    """Token ids per domain (at most max_tokens each), and a sentence saying what text they are."""

    tokens: dict[str, np.ndarray]
    described: str

    @property
    def n_tokens(self) -> int:
        return sum(len(tokens) for tokens in self.tokens.values())


def analysis_data(config: RunConfig, tokenizer: Tokenizer, tokenizer_path: Path, data: str | None,
                  max_tokens: int) -> DomainData:
    """The domains to route (see the module docstring), each cut to its first max_tokens tokens."""
    if max_tokens < config.data.seq_len:
        raise ValueError(f"--max-tokens={max_tokens} is below the run's seq_len={config.data.seq_len}: "
                         "not one window to route")
    cache_dir = Path(config.data.cache_dir).expanduser()
    if data is None:
        split = prepare_data(config.data, tokenizer_path, config.model.vocab_size, reuse_tokenizer=True).val
        described = f"the validation split of {config.data.path}"
    elif data == DOMAINS_CORPUS:
        texts = {document.domain: document.val_text for document in resolve_corpus(DOMAINS_CORPUS).documents}
        split = tokenize_split("analysis", texts, tokenizer, cache_dir)
        described = "the held-out text of the built-in four-domain corpus"
    else:
        whole = tokenize_whole_files(data, tokenizer, cache_dir)
        split, described = whole.split, f"all the text of {data}"
    cut = [domain for domain in split.domains if len(split.domain_tokens(domain)) > max_tokens]
    tokens = {domain: split.domain_tokens(domain)[:max_tokens] for domain in split.domains}
    short = [domain for domain, ids in tokens.items() if len(ids) < config.data.seq_len]
    if len(short) == len(tokens):
        raise ValueError(f"no domain of {described} has seq_len={config.data.seq_len} tokens: nothing to route")
    tokens = {domain: ids for domain, ids in tokens.items() if domain not in short}
    notes = [f"cut to its first --max-tokens={max_tokens:,}: {', '.join(cut)}"] if cut else []
    notes += [f"skipped, shorter than seq_len={config.data.seq_len}: {', '.join(short)}"] if short else []
    return DomainData(tokens, described + (f" ({'; '.join(notes)})" if notes else ""))


def token_counts(tokens: dict[str, np.ndarray], seq_len: int, probe_windows: int) -> dict[str, dict[str, int]]:
    """Per domain, the tokens each part of an analysis counts: `read`, all of them; `routed`, those in the trace,
    its whole windows of seq_len (the last read % seq_len tokens fill no window: not routed); `probe_scored`, the
    tokens the probes predict (at most probe_windows windows of seq_len + 1 tokens, spread over the text, each
    predicting seq_len); `eval_scored`, those `dsmoe eval` predicts of the same text (all but the first)."""
    counts = {}
    for domain, ids in tokens.items():
        scorable = count_windows(len(ids), seq_len) if len(ids) > seq_len else 0
        counts[domain] = {"read": len(ids), "routed": len(ids) // seq_len * seq_len,
                          "probe_scored": min(scorable, probe_windows) * seq_len,
                          "eval_scored": len(ids) - 1 if scorable else 0}
    return counts


def routed_summary(counts: dict[str, dict[str, int]], seq_len: int) -> str:
    """One sentence on how many tokens were read and routed, and why the two differ (see token_counts)."""
    read, routed = (sum(count[key] for count in counts.values()) for key in ("read", "routed"))
    windows = f"{routed // seq_len:,} windows of {seq_len}"
    if read == routed:
        return f"{read:,} tokens read and routed, in {windows}"
    return (f"{read:,} tokens read, {routed:,} routed in {windows}: the last {read - routed:,} (the end of each "
            "domain too short to fill a window) are not routed")
