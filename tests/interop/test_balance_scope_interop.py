"""DeepSeek's seq_aux flag travels as balance_scope: True is "sequence", False "micro_batch"."""

import pytest

from dsmoe import ModelConfig
from dsmoe.interop.families import FAMILIES

MLA = dict(attention="mla", n_shared_experts=1, rope_interleave=True)


@pytest.mark.parametrize("scope, seq_aux", [("sequence", True), ("micro_batch", False)])
def test_deepseek_v2_writes_and_reads_back_the_sequence_scope_as_seq_aux(scope, seq_aux):
    family = FAMILIES["deepseek_v2"]
    values = family.hf_config(ModelConfig(**MLA, balance_scope=scope))
    assert values["seq_aux"] is seq_aux
    assert family.config(values).balance_scope == scope
