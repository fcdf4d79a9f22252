"""A run's full configuration: the [model], [data] and [train] sections of its config.toml (or any TOML file),
plus --set overrides."""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsmoe import presets
from dsmoe.config import ModelConfig
from dsmoe.data.config import DataConfig
from dsmoe.train.config import TrainConfig

SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


def _check_keys(section: str, values: dict[str, Any]) -> None:
    known = [f.name for f in dataclasses.fields(SECTIONS[section])]
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {section}.{close[0]}?" if close else f"; valid keys: {', '.join(known)}"
            raise ValueError(f"unknown key {section}.{key}{hint}")


def parse_override(assignment: str) -> tuple[str, str, Any]:
    """'train.lr=3e-4' -> ('train', 'lr', 0.0003); values parse as TOML, else as plain strings."""
    target, sep, raw = assignment.partition("=")
    section, dot, key = target.strip().partition(".")
    if not sep or not dot:
        raise ValueError(f"--set {assignment!r} must look like section.key=value (sections: {', '.join(SECTIONS)})")
    if section not in SECTIONS:
        raise ValueError(f"--set {assignment!r}: unknown section {section!r}; choose one of {', '.join(SECTIONS)}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return section, key, value


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=lambda: presets.get("tiny"))
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, values: dict[str, Any], overrides: list[str] = ()) -> "RunConfig":
        """Sections from `values` (model may name a `preset` to start from), then overrides on top."""
        for section in values:
            if section not in SECTIONS:
                raise ValueError(f"unknown section [{section}]; choose from {', '.join(SECTIONS)}")
        sections = {name: dict(values.get(name, {})) for name in SECTIONS}
        for assignment in overrides:
            section, key, value = parse_override(assignment)
            sections[section][key] = value
        preset = sections["model"].pop("preset", None)
        base = presets.get(preset).to_dict() if preset else {}
        for name, body in sections.items():
            _check_keys(name, body)
        return cls(ModelConfig.from_dict({**base, **sections["model"]}), DataConfig(**sections["data"]),
                   TrainConfig(**sections["train"]))

    @classmethod
    def load(cls, path: str | Path | None, overrides: list[str] = ()) -> "RunConfig":
        if path is None:
            return cls.from_dict({"model": {"preset": "tiny"}}, overrides)
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {str(path)!r} does not exist")
        return cls.from_dict(tomllib.loads(path.read_text()), overrides)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Sections without None values; the model's derived fields stay unset (an MLA config must not name
        n_kv_heads or head_dim, so writing their derived values would make the TOML unloadable)."""
        values = {"model": self.model.to_dict(), "data": dataclasses.asdict(self.data),
                  "train": dataclasses.asdict(self.train)}
        return {name: {k: v for k, v in section.items() if v is not None} for name, section in values.items()}

    def to_toml(self) -> str:
        import tomli_w  # only writing TOML needs it (see ModelConfig.save)
        return tomli_w.dumps(self.to_dict())
