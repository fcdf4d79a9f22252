"""dsmoe.config.reference reads every field's meaning from the section docstrings, and docs/CONFIG.md is what
`python -m dsmoe config --markdown` writes from the defaults now."""

import dataclasses
from pathlib import Path

import pytest

from dsmoe.config.reference import first_sentence, markdown, rows
from dsmoe.config.sections import SECTIONS
from dsmoe.runs import RunConfig

CONFIG_MD = Path(__file__).resolve().parents[2] / "docs" / "CONFIG.md"


@pytest.mark.parametrize("section", SECTIONS)
def test_every_field_has_a_row_with_a_meaning(section):
    table = [row for row in rows() if row.section == section]
    assert [row.key for row in table] == [field.name for field in dataclasses.fields(SECTIONS[section])]
    assert [row.key for row in table if not row.meaning.strip()] == []


def test_names_sharing_one_entry_share_its_meaning():
    meanings = {row.key: row.meaning for row in rows() if row.section == "train"}
    assert meanings["beta1"] == meanings["beta2"] == meanings["eps"] == "AdamW moments"


def test_rows_give_a_configs_values_beside_the_defaults():
    config = RunConfig.load(None, ["train.lr=3e-4"])
    [lr] = [row for row in rows(config) if (row.section, row.key) == ("train", "lr")]
    assert (lr.value, lr.default, lr.meaning) == (3e-4, 1e-3, "peak learning rate")


@pytest.mark.parametrize("text, sentence", [
    ("peak learning rate. Default 1e-3.", "peak learning rate"),
    ("groups (DeepSeek-V2 Sec. 2.2.2, et al. 2017). More.", "groups (DeepSeek-V2 Sec. 2.2.2, et al. 2017)"),
    ("an offset in [0, seq_len) each epoch. Default False.", "an offset in [0, seq_len) each epoch"),
])
def test_the_first_sentence_is_not_cut_at_an_abbreviation(text, sentence):
    assert first_sentence(text) == sentence


def test_docs_config_md_is_what_the_generator_writes_now():
    assert CONFIG_MD.read_text() == markdown(rows()), "regenerate: python -m dsmoe config --markdown > docs/CONFIG.md"
