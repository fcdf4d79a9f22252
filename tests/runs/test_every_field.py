"""Every field of every run config section rejects a value of the wrong type or out of its range, from a
dict and from --set, with one message naming section.field, the value and what is allowed. The fields are
enumerated from the dataclasses, so a new field is covered (and needs a rule) as soon as it is added."""

import dataclasses
import math

import pytest
import tomli_w

from dsmoe.config import data_config, model_checks, parallel_config, train_config
from dsmoe.runs import RunConfig
from dsmoe.runs.run_config import SECTIONS

RULES = {"model": model_checks.FIELD_RULES, "data": data_config.FIELD_RULES, "train": train_config.FIELD_RULES,
         "parallel": parallel_config.FIELD_RULES}
WRONG_TYPES = {  # by the field's annotation, so the rules are checked against the dataclass
    "int": ["2", True, 2.0],
    "float": ["1.0", True, math.inf, -math.inf, math.nan],
    "bool": ["False", "no", 1, 0.0],
    "str": [1, True],
    "list[int]": ["[1]", [1, "2"], [True]],
}
OUT_OF_RANGE = {">= 1": [0, -2], ">= 0": [-1], "> 0": [0, -1.5], "[0, 1)": [-0.1, 1.0], "(0, 1)": [0.0, 1],
                "[0, 1]": [-0.1, 1.5]}


def bad_values(section: str, field: dataclasses.Field) -> list:
    rule = RULES[section][field.name]
    kind_values = {"choice": ["no-such-choice"], "string": [""]}.get(rule.kind, [])
    return WRONG_TYPES[field.type.removesuffix(" | None")] + OUT_OF_RANGE.get(rule.bounds, []) + kind_values


CASES = [(section, field.name, value) for section, config in SECTIONS.items()
         for field in dataclasses.fields(config) for value in bad_values(section, field)]


@pytest.mark.parametrize("section", SECTIONS)
def test_every_field_has_a_rule_and_every_rule_a_field(section):
    assert list(RULES[section]) == [field.name for field in dataclasses.fields(SECTIONS[section])]


@pytest.mark.parametrize("section, name, value", CASES, ids=[f"{s}.{n}={v!r}" for s, n, v in CASES])
def test_a_bad_value_is_named_with_its_section_field_and_rule(section, name, value):
    expected = f"{section}.{name}={value!r} must be {RULES[section][name].describe()}"
    with pytest.raises(ValueError) as from_dict:
        RunConfig.from_dict({section: {name: value}})
    toml_value = tomli_w.dumps({"v": value}).removeprefix("v = ")
    with pytest.raises(ValueError) as from_set:
        RunConfig.load(None, [f"{section}.{name}={toml_value}"])
    assert str(from_dict.value) == str(from_set.value) == expected
