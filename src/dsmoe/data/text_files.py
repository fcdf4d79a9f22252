"""Finding the text files of a corpus path and reading them as validated UTF-8."""

from __future__ import annotations

import glob
import gzip
import lzma
import os
from pathlib import Path

from dsmoe.data.builtin import BUILTIN_CORPORA, builtin_files

DECOMPRESSORS = {".xz": lzma.decompress, ".gz": gzip.decompress}
GLOB_CHARACTERS = "*?["


def corpus_files(path: str) -> list[Path]:
    """The files of the corpus `path`: a built-in corpus's, or those find_text_files finds."""
    return builtin_files(path) if path in BUILTIN_CORPORA else find_text_files(path)


def find_text_files(path: str) -> list[Path]:
    """The files `path` names: itself, every non-hidden file under a directory, or a glob's matches; sorted."""
    root = Path(path).expanduser()
    if root.is_file():
        return [root]
    if root.is_dir():
        files = sorted(file for file in root.rglob("*") if file.is_file() and not _is_hidden(file, root))
        if not files:
            raise FileNotFoundError(f"corpus directory {path!r} contains no files")
        return files
    if any(character in path for character in GLOB_CHARACTERS):
        matches = sorted(Path(match) for match in glob.glob(os.path.expanduser(path), recursive=True))
        files = [match for match in matches if match.is_file()]
        if not files:
            raise FileNotFoundError(f"corpus glob {path!r} matches no files")
        return files
    raise FileNotFoundError(
        f"corpus path {path!r} does not exist (give a file, a directory, a glob, "
        f"or a built-in corpus: {', '.join(BUILTIN_CORPORA)})"
    )


def _is_hidden(file: Path, root: Path) -> bool:
    """Dot files and dot directories (.git, .DS_Store) are tool metadata, not corpus text."""
    return any(part.startswith(".") for part in file.relative_to(root).parts)


def read_text(file: Path) -> str:
    """The UTF-8 text of `file` (decompressed if it ends in .xz or .gz); binary or empty files raise."""
    data = _read_bytes(file)
    if b"\0" in data:
        raise ValueError(f"corpus file {str(file)!r} is binary (it has NUL bytes); corpus files must be UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"corpus file {str(file)!r} is not valid UTF-8 (bad byte at offset {error.start}); "
            "corpus files must be UTF-8 text"
        ) from error
    if not text.strip():
        raise ValueError(f"corpus file {str(file)!r} is empty (no text besides whitespace)")
    return text


def _read_bytes(file: Path) -> bytes:
    if file.suffix not in DECOMPRESSORS:
        return file.read_bytes()
    try:
        return DECOMPRESSORS[file.suffix](file.read_bytes())
    except (lzma.LZMAError, gzip.BadGzipFile, EOFError) as error:
        raise ValueError(f"corpus file {str(file)!r} is not valid {file.suffix} data ({error})") from error


def file_stem(file: Path) -> str:
    """The file's name without its compression suffix and its extension: `bible.train.txt.xz` -> "bible.train"."""
    name = file.name.removesuffix(file.suffix) if file.suffix in DECOMPRESSORS else file.name
    return Path(name).stem


def domain_and_role(file: Path) -> tuple[str, str | None]:
    """The domain a file belongs to (its stem) and its role: "train", "val", or None (split it).

    `bible.train.txt.xz` -> ("bible", "train"); `notes.txt` -> ("notes", None).
    """
    stem = file_stem(file)
    role = Path(stem).suffix
    if role in (".train", ".val"):
        return stem.removesuffix(role), role[1:]
    return stem, None
