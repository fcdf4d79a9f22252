"""Every key of a run's configuration with its value, its default and its meaning, read from the docstrings of the
section dataclasses (`name: meaning. Default X.`, several names sharing one entry as `beta1, beta2, eps: ...`)."""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import Any

from dsmoe.config.sections import SECTIONS

ENTRY = re.compile(r"^(\s*)([a-z_0-9]+(?:, [a-z_0-9]+)*): (.*)$")
# a sentence's period: not one of "Sec. 2.1", "et al. 2017", "e.g. x"
SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<! al)(?<!Sec)(?<!Eq)\.(\s+(?![0-9])|$)")


@dataclass(frozen=True)
class Row:
    section: str
    key: str
    value: Any
    default: Any
    meaning: str


def field_docs(cls: type) -> dict[str, str]:
    """{field: its whole docstring entry as one line}, for each field the docstring of `cls` documents."""
    fields = {field.name for field in dataclasses.fields(cls)}
    docs, names, indent = {}, [], -1
    for line in inspect.getdoc(cls).splitlines():
        entry = ENTRY.match(line)
        if entry and set(entry[2].split(", ")) <= fields:
            names, indent = entry[2].split(", "), len(entry[1])
            docs.update({name: entry[3] for name in names})
        elif names and line.strip() and len(line) - len(line.lstrip()) > indent:
            docs.update({name: f"{docs[name]} {line.strip()}" for name in names})
        else:
            names = []
    return docs


def first_sentence(text: str) -> str:
    """The entry's first sentence, outside any parentheses (a period inside "(... Sec. 2.1 ...)" does not end it)."""
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if depth == 0 and SENTENCE_END.match(text, i):
            return text[:i]
    return text


def default_of(field: dataclasses.Field) -> Any:
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def rows(config: Any = None) -> list[Row]:
    """A row for every key of every section: `config` (a dsmoe.runs.RunConfig, or anything with model, data, train and
    parallel sections) gives the values; None gives the defaults as values."""
    table = []
    for section, cls in SECTIONS.items():
        meanings = field_docs(cls)
        for field in dataclasses.fields(cls):
            default = default_of(field)
            value = default if config is None else getattr(getattr(config, section), field.name)
            table.append(Row(section, field.name, value, default, first_sentence(meanings.get(field.name, ""))))
    return table


def show(value: Any) -> str:
    """A value as it is written in TOML (and after --set section.key=), None as None (no value: the field's rule)."""
    if isinstance(value, bool):
        return str(value).lower()
    return f'"{value}"' if isinstance(value, str) else str(value)


MARKDOWN_HEADER = """# Configuration reference

<!-- Generated from the defaults by `python -m dsmoe config --markdown > docs/CONFIG.md`; do not edit by hand.
The meanings are the first sentences of the docstrings of ModelConfig, DataConfig, TrainConfig and ParallelConfig
(dsmoe.config); tests/config/test_reference.py checks that this file is what the command writes now. -->

Every key of a run's configuration, by section: set one in a TOML file's `[section]` table or with
`--set section.key=value`. The `[model]` defaults are `ModelConfig`'s own; `dsmoe train` without `--config` starts
from the `tiny` preset. `dsmoe config [--preset P | --run R | --config FILE]` prints one configuration's values
beside these defaults, with the whole entry of a key in the docstrings of `dsmoe.config`.
"""


def markdown(table: list[Row]) -> str:
    """docs/CONFIG.md: one table of key, default and meaning per section."""
    lines = [MARKDOWN_HEADER]
    for section in SECTIONS:
        lines += [f"## [{section}]", "", "| key | default | meaning |", "| --- | --- | --- |"]
        lines += [f"| `{row.key}` | `{show(row.default)}` | {row.meaning.replace('|', chr(92) + '|')} |"
                  for row in table if row.section == section]
        lines.append("")
    return "\n".join(lines)
