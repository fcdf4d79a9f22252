"""Stop strings: where a completion's text first contains one of them."""

from __future__ import annotations

from collections.abc import Callable


class StopStrings:
    """Finds the earliest stop string in the decoded text of a completion's tokens, checking only the text that
    could hold a match the previous check did not see."""

    def __init__(self, stops: tuple[str, ...], detokenize: Callable[[list[int]], str]):
        self.stops, self.detokenize = stops, detokenize
        self.checked_chars = 0  # text before this offset, minus a stop's length, held no stop

    def find(self, tokens: list[int]) -> int | None:
        """The text offset where the first stop string begins, or None while there is none."""
        text = self.detokenize(tokens)
        start = max(0, self.checked_chars - max(len(stop) for stop in self.stops) + 1)
        self.checked_chars = len(text.rstrip("\ufffd"))  # a partial multi-byte character may still change
        found = [at for stop in self.stops if (at := text.find(stop, start)) >= 0]
        return min(found) if found else None
