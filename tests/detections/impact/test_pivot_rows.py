"""``--index full``: the filters that pick the attacker's rows for the impact compare each column as
the impact's own queries do (the oracle runs in tests/test_api_index.py hold the whole)."""

from __future__ import annotations

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from exhunt.detections.impact.pivot_rows import FILTERS
from exhunt.detections.impact.web import SOURCE_MATCH

ADDRESS_TEXT = st.text(alphabet="0123456789.:%abcdefABCDEF[]", max_size=14)
# an address as ``sources.ip`` keeps it (lower case), or a piece of one
VALUE = st.one_of(st.sampled_from(["10.0.0.1", "fe80::1", "::1", "203.0.113.77", "2001:db8::a"]),
                  ADDRESS_TEXT.map(str.lower))


def _matches(where: str, column: str, cells: list[str | None], params: dict | None = None) -> list[bool]:
    con = duckdb.connect()
    con.register("t", pa.table({column: pa.array(cells, pa.string()), "n": pa.array(range(len(cells)))}))
    found = {n for (n,) in con.execute(f"SELECT n FROM t WHERE {where}", params).fetchall()}
    return [n in found for n in range(len(cells))]


@settings(max_examples=150, deadline=None)
@given(st.lists(VALUE, min_size=1, max_size=4, unique=True),
       st.lists(st.one_of(st.none(), ADDRESS_TEXT, VALUE, VALUE.map(str.upper),
                          st.tuples(VALUE, ADDRESS_TEXT).map(lambda p: f"{p[0]}%{p[1]}")), max_size=12))
def test_ip_filter_is_the_impacts_comparison(values: list[str], cells: list[str | None]) -> None:
    reference = "list_contains($ips::VARCHAR[], lower(split_part(client_ip, '%', 1)))"
    assert reference in SOURCE_MATCH  # the comparison the impact's web queries make
    assert _matches(FILTERS["ips"](values), "client_ip", cells) == _matches(reference, "client_ip", cells,
                                                                            {"ips": values})


def test_filters_take_any_text_as_a_literal() -> None:
    hostile = ["it's", "a'); DROP TABLE t; --", "back\\slash"]
    assert _matches(FILTERS["user_agents"](hostile), "user_agent", [*hostile, "other"]) == [True] * 3 + [False]
    assert _matches(FILTERS["accounts"](["dom\\o'neil"]), "user", ["DOM\\O'Neil", "dom\\oneil"]) == [True, False]
    assert _matches(FILTERS["sids"](["S-1-5-21-9"]), "anchor_mailbox", ["Sid~s-1-5-21-9", "Sid~S-1-5-21-90"]) \
        == [True, False]
    assert _matches(FILTERS["ips"](["10.0.0.1'"]), "client_ip", ["10.0.0.1'", "10.0.0.1"]) == [True, False]


def test_ip_filter_edges() -> None:
    """A value with a '%' matches nothing (the comparison reads the part before one); zones and case."""
    cells = ["10.0.0.1%2", "10.0.0.1", "FE80::1%eth0", "fe80::1", "10.0.0.12"]
    assert _matches(FILTERS["ips"](["10.0.0.1%2"]), "client_ip", cells) == [False] * 5
    assert _matches(FILTERS["ips"](["10.0.0.1", "fe80::1"]), "client_ip", cells) == [True] * 4 + [False]
