"""The corpora shipped inside the package (sources and licenses in builtin/README.md)."""

from __future__ import annotations

from pathlib import Path

BUILTIN_DIR = Path(__file__).parent / "builtin"
DOMAINS = ("bible", "prose_docs", "python_code", "c_headers")

# Shakespeare has no val file, so its val split is cut off its end; the domains ship explicit ones.
BUILTIN_CORPORA: dict[str, tuple[str, ...]] = {
    "shakespeare": ("shakespeare.txt.xz",),
    "domains": tuple(f"{domain}.{split}.txt.xz" for domain in DOMAINS for split in ("train", "val")),
}


def builtin_files(name: str) -> list[Path]:
    """The compressed text files of the built-in corpus `name`, in domain order."""
    if name not in BUILTIN_CORPORA:
        raise ValueError(f"built-in corpus {name!r} does not exist (choose from {sorted(BUILTIN_CORPORA)})")
    return [BUILTIN_DIR / file_name for file_name in BUILTIN_CORPORA[name]]
