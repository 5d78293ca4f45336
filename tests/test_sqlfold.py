"""``sqlfold.FOLDS`` is exactly what DuckDB's caseless matching takes for ASCII letters, asked of
every code point: ``lower()`` and RE2's ``(?i)``."""

from __future__ import annotations

import duckdb

from exhunt.sqlfold import FOLDS, folds, spellings, to_ascii

EVERY_NON_ASCII = "SELECT chr(i::INTEGER) AS c FROM range(128, 1114112) t(i) WHERE i NOT BETWEEN 55296 AND 57343"


def test_the_folds_are_duckdbs() -> None:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE met AS SELECT c FROM ({EVERY_NON_ASCII}) "
                "WHERE regexp_matches(lower(c), '[a-z]') OR regexp_matches(c, '(?i)[a-z]')")
    found = con.execute("""
        SELECT letter, list_sort(list(c)) FROM met, (SELECT chr(i::INTEGER) AS letter FROM range(97, 123) t(i))
        WHERE contains(lower(c), letter) OR regexp_matches(c, '(?i)' || letter) GROUP BY letter""").fetchall()
    assert dict(found) == {letter: list(chars) for letter, chars in FOLDS.items()}


def test_duckdb_matches_a_literal_spelled_with_them() -> None:
    """What the triage prefilters are held to: these rows match the rule's literal in SQL."""
    con = duckdb.connect()
    spelled = "m\u0130m\u0130\u212aatz_\u017fekurlsa"
    assert con.execute("SELECT contains(lower(?), 'mimikatz'), regexp_matches(?, '(?i)kurlsa')",
                       [spelled, spelled]).fetchone() == (True, True)


def test_folds_of_a_character() -> None:
    assert spellings("K") == ("K", "\u212a") and folds("i") == ("\u0130",)
    assert folds("a") == () and folds("\u212a") == () and spellings("\u0130") == ("\u0130",)


def test_to_ascii_writes_them_as_their_letters() -> None:
    assert to_ascii("m\u0130m\u0130\u212aatz \u017fekurl\u017fa \u00ae") == "mimikatz sekurlsa \u00ae"
    text = "plain ascii"
    assert to_ascii(text) is text
