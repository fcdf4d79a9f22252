"""The family registry: the defaults dsmoe assumes for fields a config.json leaves out are transformers 5's own,
and each transformers family's config fits the family natural_family picks for its conversion."""

import pytest

from dsmoe.interop.families import FAMILIES, exportable, natural_family
from dsmoe.interop.hf import from_transformers
from interop.hf_models import CASES, hf_model, transformers


@pytest.mark.parametrize("model_type", exportable())
def test_assumed_defaults_are_transformers_config_defaults(model_type):
    family = FAMILIES[model_type]
    defaults = transformers.AutoConfig.for_model(model_type)
    for name, value in family.defaults.items():
        actual = defaults.rope_parameters["rope_theta"] if name == "rope_theta" else getattr(defaults, name)
        if name == "num_key_value_heads" and value is None:  # transformers fills in num_attention_heads, as dsmoe
            value = defaults.num_attention_heads
        assert actual == value, f"{model_type}.{name}: transformers {actual!r}, dsmoe assumes {value!r}"


@pytest.mark.parametrize("case", CASES)
def test_a_converted_model_fits_its_natural_family(case):
    model = from_transformers(hf_model(case))
    assert natural_family(model.config) == CASES[case][0]
    assert FAMILIES[CASES[case][0]].hf_config(model.config)["model_type"] == CASES[case][0]
