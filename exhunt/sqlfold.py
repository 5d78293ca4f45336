"""The non-ASCII characters that DuckDB's caseless matching takes for ASCII letters.

Sigma rules and checks match caselessly in SQL, with ``lower()`` and RE2's ``(?i)``; the triage
prefilters (text-log lines, EVTX chunks and records) search bytes ASCII-caselessly. DuckDB's
``lower()`` folds U+0130 (``İ``) to ``i`` and the Kelvin sign U+212A to ``k``; RE2's ``(?i)`` also
takes U+212A for ``k`` and the long s U+017F for ``s``. No other code point meets an ASCII letter
(tests/test_sqlfold.py asks DuckDB). A row spelling a literal with one matches in SQL, so each
prefilter searches for these characters too wherever a literal has the letter (``spellings``), or
reads them as their letters (``to_ascii``): else triage would leave out rows that ``--index full``
finds.
"""

from __future__ import annotations

FOLDS: dict[str, tuple[str, ...]] = {"i": ("\u0130",), "k": ("\u212a",), "s": ("\u017f",)}
_LETTER_OF = tuple((f, letter) for letter, chars in FOLDS.items() for f in chars)


def folds(c: str) -> tuple[str, ...]:
    """The non-ASCII characters SQL's caseless matching takes for the ASCII character ``c`` (either
    case); none for most letters, and for anything else."""
    return FOLDS.get(c.lower(), ()) if c.isascii() else ()


def spellings(c: str) -> tuple[str, ...]:
    """``c`` and its ``folds``: every character a caseless SQL match of ``c`` accepts (ASCII case aside)."""
    return (c, *folds(c))


def to_ascii(text: str) -> str:
    """``text`` with each of these characters written as its letter: a text to search for ASCII literals
    caselessly, as SQL would match them (an ASCII text is returned as it is, at no cost)."""
    if text.isascii():
        return text
    for char, letter in _LETTER_OF:
        text = text.replace(char, letter)
    return text
