"""Reading TOML and JSON files whose top level must be a table: any failure is one ValueError naming the file.

The ground floor (the config reads its files through it): it imports nothing from dsmoe.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any


def read_table(path: str | Path, what: str) -> dict[str, Any]:
    """The top-level table of the .toml or .json file `path`; `what` names the file in errors ("config file")."""
    path = Path(path)
    parsers: dict[str, Callable[[str], Any]] = {".toml": tomllib.loads, ".json": json.loads}
    parse = parsers.get(path.suffix)
    if parse is None:
        raise ValueError(f"{what} {str(path)!r} must end in .toml or .json")
    if not path.is_file():
        state = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ValueError(f"{what} {str(path)!r} {state}")
    try:
        values = parse(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} {str(path)!r} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{what} {str(path)!r} is not valid {path.suffix[1:].upper()}: {error}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{what} {str(path)!r} must hold a table (a JSON object) of keys at the top, not a {type(values).__name__}")
    return values
