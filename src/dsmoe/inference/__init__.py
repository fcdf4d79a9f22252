"""Generation: sampling rules and KV-cache decoding."""

from dsmoe.inference.generate import SamplingConfig, generate
from dsmoe.inference.sampling import filter_top_k, filter_top_p, sample_next

__all__ = ["SamplingConfig", "filter_top_k", "filter_top_p", "generate", "sample_next"]
