"""Generation: sampling rules and KV-cache decoding, one prompt or a left-padded batch."""

from dsmoe.inference.generate import SamplingConfig, generate, generate_batch
from dsmoe.inference.sampling import filter_top_k, filter_top_p, sample_next

__all__ = ["SamplingConfig", "filter_top_k", "filter_top_p", "generate", "generate_batch", "sample_next"]
