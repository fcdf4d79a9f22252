"""A field rule admits exactly what its message says: bounds as written, finite numbers, no bool for a number."""

import math

import pytest

from dsmoe.field_rules import FieldError, Rule, optional


@pytest.mark.parametrize("bounds, inside, outside", [
    (">= 1", [1, 10**400], [0, -1, 0.5]),
    ("> 0", [1e-300, 5], [0, -0.0, -1]),
    ("[0, 1)", [0, 0.0, 0.999], [1, 1.0, -1e-9]),
    ("(0, 1)", [1e-9, 0.5], [0, 1]),
    ("[0, 1]", [0, 1], [-1e-9, 1.0001]),
])
def test_bounds_admit_what_they_say(bounds, inside, outside):
    rule = Rule("number", bounds)
    assert [value for value in inside if not rule.allows(value)] == []
    assert [value for value in outside if rule.allows(value)] == []


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, True, False, "1", None])
def test_a_number_is_finite_and_not_a_bool_or_string(value):
    assert not Rule("number").allows(value)


def test_optional_admits_none_and_says_so():
    rule = optional(Rule("integer", ">= 1"))
    assert rule.allows(None) and not rule.allows(0)
    with pytest.raises(FieldError, match=r"^--seq-len=0 must be an integer >= 1 \(or unset\)$"):
        rule.check("--seq-len", 0)


def test_a_field_error_names_its_section():
    error = FieldError("lr", -1, "must be a number > 0").in_section("train")
    assert (str(error), error.name, error.value) == ("train.lr=-1 must be a number > 0", "train.lr", -1)
