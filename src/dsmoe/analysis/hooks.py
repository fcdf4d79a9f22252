"""Observing a model from outside: hooks that live for one block, with the model in eval mode meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn
from torch.utils.hooks import RemovableHandle


@contextmanager
def hooked(model: nn.Module, handles: list[RemovableHandle]) -> Iterator[None]:
    """Within the block the model is in eval mode with `handles` registered; after it, whatever happened, the
    hooks are removed and the model is in the mode it was."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
