"""A corpus: documents, each one domain's train text and val text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dsmoe.data.text_files import corpus_files, domain_and_role, read_text


@dataclass(frozen=True)
class Document:
    """One domain's text: `train_text` to learn from, `val_text` held out, `source` the file it came from."""

    domain: str
    train_text: str
    val_text: str
    source: Path


@dataclass(frozen=True)
class Corpus:
    """The documents of a corpus, one per domain, in file order."""

    documents: tuple[Document, ...]

    @property
    def domains(self) -> list[str]:
        return [document.domain for document in self.documents]


def resolve_corpus(path: str, val_fraction: float = 0.05) -> Corpus:
    """Read the corpus at `path` (a file, directory, glob, or built-in name; see DataConfig.path).

    Files pair up by domain: `<domain>.train.*` with `<domain>.val.*`; any other file is one domain
    whose last `val_fraction` (cut at a line boundary) is its val text.
    """
    files = corpus_files(path)
    files_by_domain: dict[str, dict[str | None, Path]] = {}
    for file in files:
        domain, role = domain_and_role(file)
        roles = files_by_domain.setdefault(domain, {})
        clash = _clashing_file(roles, role)
        if clash is not None:
            raise ValueError(
                f"corpus files {str(clash)!r} and {str(file)!r} both give domain {domain!r} "
                "(a domain is a file's stem and must be unique; rename one)"
            )
        roles[role] = file
    return Corpus(tuple(_document(domain, roles, val_fraction) for domain, roles in files_by_domain.items()))


def _clashing_file(files_by_role: dict[str | None, Path], role: str | None) -> Path | None:
    """A file already holding this domain that a file of `role` cannot join: same role, or an unsplit file."""
    if role is None:
        return next(iter(files_by_role.values()), None)
    return files_by_role.get(role) or files_by_role.get(None)


def _document(domain: str, files_by_role: dict[str | None, Path], val_fraction: float) -> Document:
    if "train" not in files_by_role and None not in files_by_role:
        val_file = files_by_role["val"]
        raise ValueError(f"val file {str(val_file)!r} has no train file {domain}.train.* beside it")
    train_file = files_by_role.get("train") or files_by_role[None]
    if "val" in files_by_role:
        return Document(domain, read_text(train_file), read_text(files_by_role["val"]), train_file)
    train_text, val_text = split_off_val(read_text(train_file), val_fraction, train_file)
    return Document(domain, train_text, val_text, train_file)


def split_off_val(text: str, val_fraction: float, source: Path) -> tuple[str, str]:
    """Cut `text` into (train, val) at the first line start at or after the last `val_fraction` of it.

    When no line starts there (a long last line), the cut moves back to the last line start before it.
    """
    target = int(len(text) * (1 - val_fraction))
    cut = text.find("\n", max(target - 1, 0)) + 1
    if cut in (0, len(text)):
        cut = text.rfind("\n", 0, target) + 1
    if cut in (0, len(text)):
        raise ValueError(
            f"corpus file {str(source)!r} has no line boundary to cut a val_fraction={val_fraction} split at "
            "(give it more lines, or a <domain>.val.txt file beside it)"
        )
    return text[:cut], text[cut:]
