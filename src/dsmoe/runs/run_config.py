"""A run's full configuration: the [model], [data], [train] and [parallel] sections of its config.toml (or any TOML
file), plus --set overrides."""

from __future__ import annotations

import contextlib
import dataclasses
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsmoe import presets
from dsmoe.config import ModelConfig
from dsmoe.config.model_config import read_renamed_fields
from dsmoe.config.data_config import DataConfig
from dsmoe.config.key_hints import keys, unknown_key_message
from dsmoe.config.parallel_config import ParallelConfig, check_layout
from dsmoe.config.sections import SECTIONS
from dsmoe.config.train_config import TrainConfig
from dsmoe.field_rules import FieldError
from dsmoe.structured_files import read_table


def _check_keys(section: str, values: dict[str, Any]) -> None:
    for key in values:
        if key not in keys(section):
            raise ValueError(unknown_key_message(section, key))


Override = str | tuple[str, Any]  # "section.key=value" (the value written in TOML), or ("section.key", value)


def parse_override(override: Override) -> tuple[str, str, Any]:
    """'train.lr=3e-4' -> ('train', 'lr', 0.0003): a string's value parses as TOML, else as a plain string; a
    pair's value is taken as it is (so a path given by --data stays that path, whatever characters it holds)."""
    if isinstance(override, str):
        target, sep, raw = override.partition("=")
        value = _toml_value(raw)
    else:
        target, value = override
        sep = "="
    section, dot, key = target.strip().partition(".")
    if not sep or not dot:
        raise ValueError(f"--set {override!r} must look like section.key=value (sections: {', '.join(SECTIONS)})")
    if section not in SECTIONS:
        raise ValueError(f"--set {override!r}: unknown section {section!r}; choose one of {', '.join(SECTIONS)}")
    return section, key, value


def _toml_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


@contextlib.contextmanager
def _naming(section: str) -> Iterator[None]:
    """Prefix the section to the field a FieldError names: `lr=-1 ...` -> `train.lr=-1 ...`."""
    try:
        yield
    except FieldError as error:
        raise error.in_section(section) from None


def _build(section: str, values: dict[str, Any]) -> Any:
    _check_keys(section, values)
    with _naming(section):
        return SECTIONS[section](**values)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=lambda: presets.get("tiny"))
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)

    def __post_init__(self) -> None:
        check_layout(self.parallel, self.model, self.train.batch_size)
        if self.train.optimizer == "muon" and self.parallel.world_size > 1:
            raise ValueError(f"train.optimizer='muon' runs on one process only (parallel.ep * parallel.dp = "
                             f"{self.parallel.world_size}): its Newton-Schulz step needs whole matrices, not FSDP "
                             "shards; use train.optimizer='adamw'")

    @classmethod
    def from_dict(cls, values: dict[str, Any], overrides: Sequence[Override] = ()) -> "RunConfig":
        """Sections from `values` (model may name a `preset` to start from), then overrides on top; a bad value
        raises a FieldError naming its section (`train.lr=-1 must be a number > 0`)."""
        for section, body in values.items():
            if section not in SECTIONS:
                raise ValueError(f"unknown section [{section}]; choose from {', '.join(SECTIONS)}")
            if not isinstance(body, dict):
                raise ValueError(f"[{section}] must be a table of keys, not {body!r}")
        sections = {name: dict(values.get(name, {})) for name in SECTIONS}
        sections["model"] = read_renamed_fields(sections["model"])  # e.g. a config.toml saved before a rename
        for override in overrides:
            section, key, value = parse_override(override)
            if section == "model":
                [(key, value)] = read_renamed_fields({key: value}).items()
            sections[section][key] = value
        preset = sections["model"].pop("preset", None)
        if preset is not None:
            with _naming("model"):
                sections["model"] = {**presets.get(preset).to_dict(), **sections["model"]}
        return cls(**{name: _build(name, body) for name, body in sections.items()})

    @classmethod
    def load(cls, path: str | Path | None, overrides: Sequence[Override] = ()) -> "RunConfig":
        if path is None:
            return cls.from_dict({"model": {"preset": "tiny"}}, overrides)
        if Path(path).suffix != ".toml":
            raise ValueError(f"config file {str(path)!r} must be a .toml file with [model], [data] and [train] tables")
        return cls.from_dict(read_table(path, "config file"), overrides)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Sections without None values; the model's derived fields stay unset (an MLA config must not name
        n_kv_heads or head_dim, so writing their derived values would make the TOML unloadable)."""
        values = {"model": self.model.to_dict(), "data": dataclasses.asdict(self.data),
                  "train": dataclasses.asdict(self.train), "parallel": dataclasses.asdict(self.parallel)}
        return {name: {k: v for k, v in section.items() if v is not None} for name, section in values.items()}

    def to_toml(self) -> str:
        import tomli_w  # only writing TOML needs it (see ModelConfig.save)
        return tomli_w.dumps(self.to_dict())
