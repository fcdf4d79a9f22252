"""The sections of a run's configuration, by the TOML table that holds each: [model], [data], [train], [parallel]."""

from dsmoe.config.data_config import DataConfig
from dsmoe.config.model_config import ModelConfig
from dsmoe.config.parallel_config import ParallelConfig
from dsmoe.config.train_config import TrainConfig

SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "parallel": ParallelConfig}
