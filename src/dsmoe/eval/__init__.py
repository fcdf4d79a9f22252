"""Evaluation: loss, perplexity, bits per byte, per domain."""

from dsmoe.eval.evaluate import EvalResult, evaluate_domains, evaluate_tokens

__all__ = ["EvalResult", "evaluate_domains", "evaluate_tokens"]
