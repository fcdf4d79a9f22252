"""table1's two setups: the paper's (Dense, Hash and Switch at 1F activated, GShard and DeepSeekMoE at 2F, every MoE
holding 16F) reproduces Tables 1 and 2's parameters and FLOPs at the paper's 2B size; table1-equal-activated gives
all five 2F; a variant that differs from the FFN it states is refused, naming it."""

import pytest

from dsmoe.model.estimates import estimate_costs
from dsmoe.reproduce.plan import Plan
from dsmoe.reproduce.scales import SCALES, Scale
from dsmoe.reproduce.suites import SUITES
from dsmoe.reproduce.variants import Variant, check_ffn_sizes, experts, matched_params_table, variant_params
from tests.train.tiny import write_corpus

# DeepSeekMoE Sec. 4.1.3 (9 layers, hidden 1280, 10 heads of 128, 8K vocabulary, 2K tokens); its tables count a
# standard FFN as 8 x 1280^2 parameters (width 8 x 1280 / 3 = 3413; 3412 keeps F/4 whole)
PAPER_2B = Scale("paper-2b", dict(hidden_size=1280, n_layers=9, n_heads=10, vocab_size=8192, max_seq_len=2048),
                 expert_width=3412, seq_len=2048, batch_size=1, steps=1, minutes=1.0)

# Table 1: total and activated parameters (B, one decimal) and FLOPs per 2K tokens (T, one decimal)
TABLE_1 = {"dense": (0.2, 0.2, 2.9), "hash": (2.0, 0.2, 2.9), "switch": (2.0, 0.2, 2.9), "gshard": (2.0, 0.3, 4.3),
           "deepseekmoe": (2.0, 0.3, 4.3)}
# Table 2: total and activated expert parameters (B, two decimals) and FLOPs per 2K tokens
TABLE_2 = {"gshard_x1.5": (2.83, 0.35, 5.8), "dense_total": (1.89, 1.89, 24.6), "deepseekmoe": (1.89, 0.24, 4.3)}


def flops_per_2k_tokens(variant: Variant) -> float:
    return estimate_costs(variant.model_config(PAPER_2B), 1, 2048).flops_per_token_training * 2048


def papers_rounding(names, counts) -> dict:
    """name -> (its two parameter counts as `counts` rounds them, its FLOPs per 2K tokens in T at one decimal)."""
    variants = {variant.name: variant for variant in SUITES["table1"].variants(PAPER_2B)}
    return {name: (*counts(variant_params(variants[name], PAPER_2B)),
                   round(flops_per_2k_tokens(variants[name]) / 1e12, 1)) for name in names}


def test_table1_at_the_papers_2b_size_has_table_1s_parameters_and_flops():
    assert papers_rounding(TABLE_1, lambda p: (round(p.total / 1e9, 1), round(p.activated / 1e9, 1))) == TABLE_1


def test_table1s_references_at_the_papers_2b_size_have_table_2s_expert_parameters_and_flops():
    assert papers_rounding(TABLE_2, lambda p: (round(p.ffn_total / 1e9, 2), round(p.ffn_activated / 1e9, 2))) \
        == TABLE_2


@pytest.mark.parametrize("suite, activated", [
    ("table1", {"Dense": "1F of 1F", "Hash Layer": "1F of 16F", "Switch": "1F of 16F", "GShard": "2F of 16F",
                "DeepSeekMoE": "2F of 16F"}),
    ("table1-equal-activated", {"Dense": "2F of 2F", "Hash Layer": "2F of 16F", "Switch": "2F of 16F",
                                "GShard": "2F of 16F", "DeepSeekMoE": "2F of 16F"}),
])
@pytest.mark.parametrize("scale", list(SCALES))
def test_each_setups_table_prints_the_ffn_its_variants_activate_and_hold(suite, activated, scale):
    variants = SUITES[suite].variants(SCALES[scale])
    check_ffn_sizes(variants, SCALES[scale])
    rows = {line[:28].rstrip(): line[28:] for line in matched_params_table(variants, SCALES[scale]).splitlines()}
    assert all(f" {per_layer} " in rows[label] for label, per_layer in activated.items())


def test_the_equal_activated_setup_plans_its_own_directory(tmp_path):
    plan = Plan.make("table1-equal-activated", data=str(write_corpus(tmp_path / "data")))
    assert plan.out.name == "table1-equal-activated-tiny"
    assert plan.command().startswith("dsmoe reproduce table1-equal-activated ")


def test_a_variant_that_differs_from_the_ffn_it_states_is_refused_by_name():
    scale = SCALES["tiny"]
    wrong = Variant("moe", "Top-2 MoE", experts(0, 16, 2, scale.expert_width), "top-2 of 16", activated_f=1,
                    total_f=8)
    with pytest.raises(ValueError, match="Top-2 MoE activates 2F, not 1F; Top-2 MoE holds 16F, not 8F"):
        check_ffn_sizes([wrong], scale)
