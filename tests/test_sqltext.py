"""Every SQL literal built from evidence goes through exhunt.sqltext: hostile values round-trip."""

from __future__ import annotations

import duckdb
import orjson
import pytest

from exhunt.sqltext import identifier, json_key_path, literal

HOSTILE = ["plain", "it's", "''", "'; DROP TABLE events; --", "back\\slash", 'dq"', "%_like", "\x00nul",
           "ünï\u202ecode", "line\nbreak", ""]


def _one(sql: str) -> tuple | None:
    return duckdb.connect().execute(sql).fetchone()


@pytest.mark.parametrize("value", HOSTILE)
def test_literal_round_trips_in_duckdb(value: str) -> None:
    if "\x00" in value:  # DuckDB strings cannot hold NUL: the literal must still be one literal
        assert literal(value).count("'") % 2 == 0
        return
    assert _one(f"SELECT {literal(value)}") == (value,)


def test_literal_none_is_null() -> None:
    assert _one(f"SELECT {literal(None)} IS NULL") == (True,)


@pytest.mark.parametrize("name", ["user", "cs-uri-stem", 'a"b', "a b", "select", "x'y"])
def test_identifier_names_one_column(name: str) -> None:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({identifier(name)} VARCHAR)")
    con.execute("INSERT INTO t VALUES ('v')")
    assert con.execute("SELECT * FROM t").description[0][0] == name
    assert con.execute(f"SELECT {identifier(name)} FROM t").fetchone() == ("v",)


@pytest.mark.parametrize("key", ["cs-uri-stem", "a.b", "it's", 'quo"te', "$", "AnchorMailbox", "back\\", 'b\\"q'])
def test_json_key_path_selects_exactly_that_key(key: str) -> None:
    doc = orjson.dumps({key: "hit", "a": {"b": "miss"}, "other": "miss"}).decode()
    assert _one(f"SELECT json_extract_string({literal(doc)}, {json_key_path(key)})") == ("hit",)
