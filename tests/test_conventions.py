"""Shape suffixes follow the legend of docs/CONVENTIONS.md: each letter one dimension, and no letter the legend
leaves out."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEGEND = ROOT / "docs" / "CONVENTIONS.md"
SRC = ROOT / "src" / "dsmoe"

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


def test_the_legend_examples_read_as_suffixes():
    for letter, _, example in legend_rows():
        names = re.findall(r"`([^`]+)`", example)
        assert names and all(letter in (shape_suffix(name) or "") for name in names), (letter, example)


def test_the_legend_examples_are_names_the_code_uses():
    words = {word for path in SRC.rglob("*.py") for word in WORD.findall(path.read_text())}
    examples = {name for _, _, example in legend_rows() for name in re.findall(r"`([^`]+)`", example)}
    assert sorted(examples - words) == []
