"""SqlCheck turns query rows into hits one way, by column position; a check that overrides ``hit``
keeps shaping its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb

from exhunt.detections.base import SqlCheck
from exhunt.findings.model import Hit
from exhunt.findings.triage import group_hits, group_rows

SQL = ("SELECT 'h1' AS host, '/logs/a.log' AS path, 'k' AS key, 'iis' AS source, 7 AS line, "
       "'GET /x' AS excerpt, '10.0.0.9' AS ioc_client_ip, '' AS ioc_user_agent")


class Plain(SqlCheck):
    id = "test.plain"
    title = "plain"
    severity = "high"
    description = "a test check"
    sql = SQL


class Shaped(Plain):
    id = "test.shaped"

    def hit(self, row: dict[str, Any]) -> Hit:
        base = super().hit(row)
        return Hit(**{**base.__dict__, "key": f"shaped:{row['key']}"})


def test_rows_by_position_equal_rows_by_dict() -> None:
    con = duckdb.connect()
    [by_position] = list(Plain().run(con))
    row = dict(zip(["host", "path", "key", "source", "line", "excerpt", "ioc_client_ip", "ioc_user_agent"],
                   con.execute(SQL).fetchone() or (), strict=True))
    assert by_position == Plain().hit(row)
    assert by_position.line == 7 and by_position.confidence == "high"
    assert by_position.indicators == {"client_ip": "10.0.0.9"}  # empty indicators dropped


def test_an_overriding_hit_is_used() -> None:
    [hit] = list(Shaped().run(duckdb.connect()))
    assert hit.key == "shaped:k"


class Gated(Plain):
    id = "test.gated"

    def run(self, con: duckdb.DuckDBPyConnection) -> Iterator[Hit]:
        return iter(())  # a gate that finds too little to run the query


def test_grouping_reads_the_rows_a_check_makes() -> None:
    con = duckdb.connect()
    [plain] = group_rows(Plain(), Plain().hit_rows(con))
    assert (plain.key, plain.count, plain.indicators) == ("k", 1, {"client_ip": ["10.0.0.9"]})
    assert plain == group_hits(Plain(), Plain().run(con))[0]
    [shaped] = group_rows(Shaped(), Shaped().hit_rows(con))
    assert shaped.key == "shaped:k"
    assert list(Gated().hit_rows(con)) == []
