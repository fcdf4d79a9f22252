"""resolve_corpus: files, directories, globs and built-ins; domain labels; the val split; clear errors."""

import gzip

import pytest

from dsmoe.data import resolve_corpus
from dsmoe.data.builtin import builtin_files
from dsmoe.data.text_files import read_text

LINES = "".join(f"line number {i}\n" for i in range(100))


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_builtin_files_decompress_to_the_original_texts():
    starts = {
        "shakespeare": "First Citizen:\nBefore we proceed any further, hear me speak.",
        "bible.train": "\nGenesis 1\n\n  1 In the beginning God created the heaven and the earth.",
        "prose_docs.train": "=====================\nAbout these documents\n",
        "python_code.train": '# file: __future__.py\n"""Record of phased-in incompatible language changes.',
        "c_headers.train": "/* file: aio.h */\n/* Copyright (C) 1996-2022 Free Software Foundation",
    }
    files = {file.name.removesuffix(".txt.xz"): file for corpus in ("shakespeare", "domains")
             for file in builtin_files(corpus)}
    for name, start in starts.items():
        assert read_text(files[name]).startswith(start), name


def test_builtin_corpora_resolve_to_their_domains():
    assert resolve_corpus("shakespeare").domains == ["shakespeare"]
    assert resolve_corpus("domains").domains == ["bible", "prose_docs", "python_code", "c_headers"]


def test_the_val_split_is_the_last_fraction_cut_at_a_line_start_and_disjoint_from_train(tmp_path):
    document, = resolve_corpus(str(_write(tmp_path / "lines.txt", LINES)), val_fraction=0.1).documents
    assert document.train_text + document.val_text == LINES
    # 10% of 1490 characters is 149; line 91 is the first to start in the last 149
    assert document.val_text == "".join(f"line number {i}\n" for i in range(91, 100))


def test_the_split_is_deterministic(tmp_path):
    path = str(_write(tmp_path / "lines.txt", LINES))
    assert resolve_corpus(path, 0.07) == resolve_corpus(path, 0.07)


def test_a_directory_gives_one_domain_per_file_sorted_recursively_skipping_hidden_files(tmp_path):
    for relative in ("b.txt", "sub/a.md", "c", ".hidden.txt", ".git/config"):
        _write(tmp_path / relative, LINES)
    assert resolve_corpus(str(tmp_path)).domains == ["b", "c", "a"]  # sorted by path: b.txt, c, sub/a.md


def test_a_glob_selects_the_matching_files(tmp_path):
    for name in ("x.txt", "y.txt", "z.md"):
        _write(tmp_path / name, LINES)
    assert resolve_corpus(str(tmp_path / "*.txt")).domains == ["x", "y"]


def test_train_and_val_files_pair_up_into_one_domain(tmp_path):
    _write(tmp_path / "law.train.txt", "train text\n")
    _write(tmp_path / "law.val.txt", "val text\n")
    document, = resolve_corpus(str(tmp_path)).documents
    assert (document.domain, document.train_text, document.val_text) == ("law", "train text\n", "val text\n")


def test_gzip_files_are_read_as_their_text(tmp_path):
    (tmp_path / "poems.txt.gz").write_bytes(gzip.compress(LINES.encode(), mtime=0))
    document, = resolve_corpus(str(tmp_path / "poems.txt.gz")).documents
    assert document.domain == "poems" and document.train_text + document.val_text == LINES


@pytest.mark.parametrize(("files", "target", "message"), [
    ({}, "missing.txt", "corpus path '.*missing.txt' does not exist"),
    ({"a.txt": LINES}, "*.md", r"corpus glob '.*\*.md' matches no files"),
    ({"empty.txt": " \n"}, "empty.txt", "corpus file '.*empty.txt' is empty"),
    ({"nul.txt": "abc\0def\n"}, "nul.txt", "corpus file '.*nul.txt' is binary"),
    ({"one.txt": "a single line without a break"}, "one.txt", "'.*one.txt' has no line boundary"),
    ({"x.txt": LINES, "x.train.txt": LINES}, "", "'.*x.train.txt' and '.*x.txt' both give domain 'x'"),
    ({"y.val.txt": LINES}, "", "val file '.*y.val.txt' has no train file"),
    ({"packed.txt.xz": LINES}, "packed.txt.xz", "corpus file '.*packed.txt.xz' is not valid .xz data"),
])
def test_a_bad_corpus_raises_naming_the_path(tmp_path, files, target, message):
    for name, text in files.items():
        _write(tmp_path / name, text)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        resolve_corpus(str(tmp_path / target))


def test_a_file_that_is_not_utf8_raises_naming_it(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ValueError, match="'.*latin1.txt' is not valid UTF-8"):
        resolve_corpus(str(tmp_path / "latin1.txt"))
