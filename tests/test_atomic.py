"""Atomic writes: the target appears whole or not at all, and nothing is left beside it when the block raises."""

import pytest

from dsmoe.atomic import atomic_directory, atomic_file, remove_temporaries


class Interrupted(Exception):
    pass


def test_a_file_written_in_full_replaces_the_old_one_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out" / "data.bin"
    for content in (b"old", b"new"):
        with atomic_file(target) as temporary:
            temporary.write_bytes(content)
    assert target.read_bytes() == b"new" and list(target.parent.iterdir()) == [target]


def test_a_file_whose_block_raises_leaves_the_old_one_and_nothing_beside_it(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(Interrupted), atomic_file(target) as temporary:
        temporary.write_bytes(b"partial")
        raise Interrupted
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_a_directory_whose_block_raises_leaves_nothing_behind(tmp_path):
    with pytest.raises(Interrupted), atomic_directory(tmp_path / "out") as temporary:
        (temporary / "nested").mkdir()
        (temporary / "nested" / "part.bin").write_bytes(b"partial")
        raise Interrupted
    assert list(tmp_path.iterdir()) == []


def test_a_directory_appears_with_everything_written_into_it(tmp_path):
    with atomic_directory(tmp_path / "out") as temporary:
        (temporary / "nested").mkdir()
        (temporary / "nested" / "part.bin").write_bytes(b"whole")
    assert (tmp_path / "out" / "nested" / "part.bin").read_bytes() == b"whole"
    assert list(tmp_path.iterdir()) == [tmp_path / "out"]


def test_a_directory_never_goes_over_a_non_empty_one_unless_told_to_replace_it(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"exists and is not an empty directory \(it holds notes\.txt\)"), \
            atomic_directory(tmp_path / "out"):
        pytest.fail("the block ran")
    assert (tmp_path / "out" / "notes.txt").read_text() == "keep me"
    with atomic_directory(tmp_path / "out", replace=True) as temporary:
        (temporary / "new.txt").write_text("new")
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["new.txt"]


def test_the_temporaries_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    (tmp_path / ".step_00000004.k1ll3d.tmp").mkdir()
    (tmp_path / ".metrics.jsonl.k1ll3d.tmp").write_text("partial")
    for kept in ("step_00000003", "metrics.jsonl", ".hidden", ".notes.txt.mine.tmp"):  # the last: a user's file
        (tmp_path / kept).write_text("kept")
    remove_temporaries(tmp_path / "step_*", tmp_path / "metrics.jsonl", tmp_path / "missing" / "config.toml")
    assert sorted(path.name for path in tmp_path.iterdir()) == [".hidden", ".notes.txt.mine.tmp", "metrics.jsonl",
                                                                "step_00000003"]
