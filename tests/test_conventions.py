"""Shape suffixes follow the legend of docs/CONVENTIONS.md: each letter one dimension, and no letter the legend
leaves out."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEGEND = ROOT / "docs" / "CONVENTIONS.md"
SRC = ROOT / "src" / "dsmoe"

# Names in code that was being rewritten when the legend came, whose letters mean another dimension there than
# the legend's; each is to be renamed as shown (X, Y: widths named by a comment there). THIS LIST MUST BECOME EMPTY:
# rename a name, then remove its entry. The test below fails for an entry whose old name has gone.
NOT_YET_RENAMED = {
    "routers/balance.py": {"sent_TD": "sent_TP", "f_D": "f_P", "p_D": "p_P",
                           "f_DG": "f_PX", "p_DG": "p_PX"},  # X = E / P, the experts of one device
    "routers/base.py": {"dispatch_BLC": "dispatch_BLX", "combine_BLC": "combine_BLX",  # X = E * Q, every slot
                        "slots_BCD": "slots_BXD", "y_BCD": "y_BXD", "slots_EBPD": "slots_EBQD", "y_EBPD": "y_EBQD"},
    "routers/soft_moe.py": {"logits_BLC": "logits_BLX"},
    "routers/expert_choice.py": {"weights_EC": "weights_EQ", "token_index_EC": "token_index_EQ",
                                 "expert_index_EC": "expert_index_EQ"},
    "routers/grouping.py": {"choice_TGE": "choice_TGX",  # X = E / G, the experts of one group
                            "best_TGN": "best_TGY", "remaining_TGN": "remaining_TGY",  # Y = scored_per_group
                            "top_groups_TM": "top_groups_TY"},  # Y = topk_group
    "kernels/fused.py": {"a_SK": "a_SX", "b_EKN": "b_EXY", "out_SN": "out_SY"},  # X, Y: the matmul's inner, outer
    "kernels/loop.py": {"x_ND": "x_RD", "gate_NF": "gate_RF", "up_NF": "up_RF", "y_ND": "y_SD"},
}

LEGEND_ROW = re.compile(r"^\| `([A-Z])` \| (.+?) \| (.+?) \|$")
WORD = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


def legend_rows() -> list[tuple[str, str, str]]:
    return [match.groups() for line in LEGEND.read_text().splitlines() if (match := LEGEND_ROW.match(line))]


def shape_suffix(word: str) -> str | None:
    """The capitals (and digits) after a name's last `_`, if it has lower-case letters before: x_TD -> TD."""
    prefix, _, suffix = word.rpartition("_")
    if prefix and re.fullmatch(r"[A-Z0-9]*[A-Z][A-Z0-9]*", suffix) and re.search(r"[a-z]", prefix):
        return suffix
    return None


def test_the_legend_gives_each_letter_one_dimension():
    letters = [letter for letter, _, _ in legend_rows()]
    assert len(letters) >= 20, f"only {len(letters)} rows parsed from {LEGEND}"
    assert len(letters) == len(set(letters)), f"letters defined twice: {sorted(letters)}"


def test_every_shape_suffix_uses_letters_of_the_legend():
    letters = {letter for letter, _, _ in legend_rows()}
    unknown = set()
    for path in sorted(SRC.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for word in WORD.findall(line):
                suffix = shape_suffix(word)
                if suffix and set(re.sub(r"[0-9]", "", suffix)) - letters:
                    unknown.add(f"{path.relative_to(SRC)}:{number}: {word}")
    assert not unknown, "shape letters not in docs/CONVENTIONS.md:\n" + "\n".join(sorted(unknown))


def test_names_not_yet_renamed_are_still_there_and_their_new_names_follow_the_legend():
    letters = {letter for letter, _, _ in legend_rows()}
    for relative, renames in NOT_YET_RENAMED.items():
        path = SRC / relative
        words = set(WORD.findall(path.read_text())) if path.exists() else set()
        for old, new in renames.items():
            assert old in words, f"{relative} no longer has {old}: remove it from NOT_YET_RENAMED"
            assert set(re.sub(r"[0-9]", "", shape_suffix(new) or "?")) <= letters, (relative, new)


def test_the_legend_examples_read_as_suffixes():
    for letter, _, example in legend_rows():
        names = re.findall(r"`([^`]+)`", example)
        assert names and all(letter in (shape_suffix(name) or "") for name in names), (letter, example)
