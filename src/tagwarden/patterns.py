"""Regular expressions people type (tag filters, approval rules), run by RE2.

Python's ``re`` backtracks: ``(a+)+$`` against a 30-character tag blocked the event loop for
37 s, doubling with each character. RE2 matches in time linear in the tag, whatever the
pattern, and refuses what it cannot do so (backreferences, lookarounds, patterns past its
memory budget) when the pattern is compiled: that is when a person hears why.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

# Enough for any pattern that fits the 500-character columns; a pattern needing more is
# refused rather than allowed to take memory from the server (RE2 falls back to its slower,
# still linear, engine when a match outgrows it).
MAX_MEM = 8 << 20


class PatternError(ValueError):
    """A pattern RE2 will not compile; the message says why."""


def _options() -> Any:
    options = re2.Options()
    options.max_mem = MAX_MEM
    options.log_errors = False  # the caller reports the error; RE2 would print it to stderr
    return options


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    # Patterns come from a few hundred images and rules: a scan matches each tag against the
    # same few, so compiling once per pattern (not per check) is what the cache is for.
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"not a usable regular expression: {reason}") from None


def check(pattern: str) -> str:
    """The pattern, if RE2 compiles it; raises :class:`PatternError` saying why not."""
    _compiled(pattern)
    return pattern


def error_of(pattern: str) -> str | None:
    """Why RE2 refuses the pattern, or None when it compiles."""
    try:
        _compiled(pattern)
    except PatternError as exc:
        return str(exc)
    return None


def search(pattern: str, text: str) -> bool:
    """Whether the pattern matches anywhere in the text (``re.search``)."""
    return _compiled(pattern).search(text) is not None


def fullmatch(pattern: str, text: str) -> bool:
    """Whether the pattern matches the whole text (``re.fullmatch``)."""
    return _compiled(pattern).fullmatch(text) is not None
