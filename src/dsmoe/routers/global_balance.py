"""Global-batch balance statistics (Qiu et al. 2025, "Demons in the Detail", arXiv 2501.11873, Sec. 3): the
expert-level loss's f_i counted over every micro-batch of an optimizer step (and, with data parallelism, every
rank) instead of one micro-batch, P_i still each micro-batch's own.

f_i of the global batch is known only once every micro-batch is routed, so a no-grad counting pre-pass routes
them all first (the random draws of noisy_topk and gshard replayed identically: the RNG state is restored
afterwards); the forwards/backwards that follow use those counts. Since f_i carries no gradient, each micro-batch's
alpha * sum_i f_i^global P_i^micro weighted 1/grad_accum sums to alpha * sum_i f_i^global P_i^global: the step's
gradient is exactly that of one batch of all its micro-batches. The pre-pass costs one extra no-grad forward of
each micro-batch; it also counts sigmoid_topk's bias load twice, which its sign rule ignores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from dsmoe.routers.step_updates import ReduceSum, routers_of


def uses_global_batch(model: nn.Module) -> bool:
    return any(router.config.balance_scope == "global_batch" for router in routers_of(model))


@contextlib.contextmanager
def global_batch_counts(model: nn.Module, micro_batches: Sequence[torch.Tensor],
                        forward: Callable[[torch.Tensor], object],
                        reduce_sum: ReduceSum | None = None) -> Iterator[None]:
    """Within the block, every router's expert-level loss counts f_i over all `micro_batches` (each run once by
    `forward`, the caller's own autocast included, without gradients), summed over ranks by `reduce_sum` when
    given (the data-parallel collective: dsmoe train passes one under torchrun)."""
    routers = routers_of(model)
    for router in routers:
        router.set_balance_phase("counting")
    devices = [batch.device for batch in micro_batches[:1] if batch.device.type == "cuda"]
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        for micro_batch in micro_batches:
            forward(micro_batch)
    for router in routers:
        for statistic in router.balance_statistics() if reduce_sum is not None else ():
            reduce_sum(statistic)
        router.set_balance_phase("using")
    try:
        yield
    finally:
        for router in routers:
            router.set_balance_phase("off")
