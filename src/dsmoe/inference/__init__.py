"""Generation: sampling rules and KV-cache decoding, one prompt or a left-padded batch, and greedy
self-speculative decoding with MTP drafts."""

from dsmoe.inference.generate import SamplingConfig, generate, generate_batch
from dsmoe.inference.sampling import filter_top_k, filter_top_p, sample_next
from dsmoe.inference.speculative import SpeculativeResult, generate_speculative

__all__ = ["SamplingConfig", "SpeculativeResult", "filter_top_k", "filter_top_p", "generate", "generate_batch",
           "generate_speculative", "sample_next"]
