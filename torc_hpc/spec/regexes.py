"""depends_on_regexes (and the other *_regexes), matched in linear time.

Matching is a search, as in Torc (`Regex::is_match`): `train_` selects `train_1` and `pre_train_1`; anchor
with `^…$` to match whole names.

Python's `re` backtracks: `(a+)+$` against thirty a's and a b takes longer than anyone waits. RE2
(google-re2) guarantees time linear in the name's length, refuses what it cannot do that way
(backreferences, lookaround: a located error, not a hang) and bounds each expression's memory
(MAX_REGEX_MEMORY). Names are sorted once, so an expression starting with a literal prefix only checks
the names that share it (only when the expression starts with ^: a search can match anywhere); the total number of checks is known before any is made (MAX_REGEX_CHECKS).
"""

from __future__ import annotations

from bisect import bisect_left

import re2

from torc_hpc.limits import MAX_REGEX_MEMORY

_META = set("\\^$.|?*+()[]{}")


def _options() -> re2.Options:
    o = re2.Options()
    o.max_mem = MAX_REGEX_MEMORY
    o.log_errors = False
    o.never_capture = True
    return o


_OPTIONS = _options()


def compile_regex(text: str):
    """A compiled expression, or the reason it cannot be used (a str)."""
    try:
        return re2.compile(text, _OPTIONS)
    except re2.error as e:
        reason = e.args[0] if e.args else e
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return (f"bad regular expression {text!r}: {reason} (depends_on_regexes use RE2 syntax: no "
                "backreferences or lookaround)")


def literal_prefix(text: str) -> str:
    """Characters every matching name must start with (conservative: '' when unsure, and always '' for an
    expression not anchored with ^, since a search matches anywhere)."""
    if "|" in text or not text.startswith("^"):
        return ""
    i = 1
    start = i
    while i < len(text) and text[i] not in _META:
        i += 1
    prefix = text[start:i]
    if i < len(text) and text[i] in "?*{" and prefix:
        prefix = prefix[:-1]  # the last character is optional
    return prefix


class NameIndex:
    """Job names sorted once, for prefix ranges."""

    def __init__(self, names: list[str]):
        self.order = sorted(range(len(names)), key=names.__getitem__)
        self.sorted = [names[k] for k in self.order]

    def span(self, prefix: str) -> tuple[int, int]:
        """Positions [lo, hi) in sorted order of the names starting with `prefix`."""
        if not prefix:
            return 0, len(self.sorted)
        lo = bisect_left(self.sorted, prefix)
        while prefix and ord(prefix[-1]) == 0x10FFFF:
            prefix = prefix[:-1]
        if not prefix:
            return lo, len(self.sorted)
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return lo, bisect_left(self.sorted, upper)

    def matches(self, pattern, span: tuple[int, int]) -> list[int]:
        """Job indexes (unsorted) of the names the pattern matches somewhere, among the span's candidates."""
        lo, hi = span
        full = pattern.search
        names, order = self.sorted, self.order
        return [order[k] for k in range(lo, hi) if full(names[k]) is not None]
