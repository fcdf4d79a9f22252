"""Derived fields (n_kv_heads, head_dim, norm_topk_prob left None) stay derived through dataclasses.replace, as
through ModelConfig.replace, save and load: a copy derives them from its own fields; a value given stays given."""

import dataclasses

import pytest

from dsmoe import ModelConfig, presets

DERIVED = ("n_kv_heads", "head_dim", "norm_topk_prob")


@pytest.mark.parametrize("name", presets.names())
def test_dataclasses_replace_equals_the_replace_method_on_every_preset(name):
    preset = presets.get(name)
    copied, replaced = dataclasses.replace(preset, z_loss_coef=1e-3), preset.replace(z_loss_coef=1e-3)
    assert copied.to_dict() == replaced.to_dict() == {**preset.to_dict(), "z_loss_coef": 1e-3}
    assert copied == replaced  # every field, the derived ones at their resolved values
    assert [getattr(copied, name) for name in DERIVED] == [getattr(preset, name) for name in DERIVED]


def test_an_mla_copy_leaves_the_unused_attention_widths_unset():
    copied = dataclasses.replace(presets.get("tiny-v3"), n_heads=4)
    assert (copied.to_dict()["n_kv_heads"], copied.to_dict()["head_dim"]) == (None, None)
    assert copied == presets.get("tiny-v3", n_heads=4)


def test_a_derived_head_dim_follows_a_new_hidden_size():
    assert dataclasses.replace(ModelConfig(), hidden_size=512).head_dim == 128
    assert dataclasses.replace(ModelConfig(n_kv_heads=2), n_heads=8).n_kv_heads == 2  # given: kept


def test_a_given_head_dim_survives_a_new_hidden_size():
    copied = dataclasses.replace(ModelConfig(head_dim=32), hidden_size=512)
    assert copied.head_dim == 32 and copied.to_dict()["head_dim"] == 32


def test_a_derived_field_given_a_new_value_becomes_given():
    copied = dataclasses.replace(ModelConfig(), head_dim=32)
    assert copied.head_dim == 32 and copied.to_dict()["head_dim"] == 32


def test_norm_topk_prob_follows_a_new_router_unless_it_was_given():
    derived = ModelConfig(router="sigmoid_topk")
    assert dataclasses.replace(derived, router="softmax_topk").norm_topk_prob is False
    given = ModelConfig(router="sigmoid_topk", norm_topk_prob=True)
    assert dataclasses.replace(given, router="softmax_topk").norm_topk_prob is True
