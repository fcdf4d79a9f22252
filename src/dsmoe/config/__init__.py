"""The ground floor: every section of a run's configuration and its validation, importing nothing above it.

ModelConfig (model_config.py, checked by model_checks.py) is the one dial of a model; DataConfig, TrainConfig and
ParallelConfig are the [data], [train] and [parallel] sections a run adds (dsmoe.runs.RunConfig holds all four).
"""

from dsmoe.config.data_config import DataConfig
from dsmoe.config.model_config import ModelConfig
from dsmoe.config.parallel_config import ParallelConfig, check_layout
from dsmoe.config.train_config import TrainConfig

__all__ = ["DataConfig", "ModelConfig", "ParallelConfig", "TrainConfig", "check_layout"]
