"""Scale-out over torch.distributed, applied from outside the model: the device mesh, the expert-parallel token
dispatcher, FSDP2 for everything else, and the training-side collectives (gradient norm, router statistics,
gathered checkpoints). Only `config` is imported here; the rest imports torch.distributed where it is used."""

from dsmoe.config.parallel_config import ParallelConfig

__all__ = ["ParallelConfig"]
