"""Rows in, Sigma rules converted, matches out: the harness every Sigma test uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import yaml

from exhunt.detections.sigma.engine import run_queries
from exhunt.detections.sigma.loader import RuleSet, convert
from exhunt.events.schema import EVENTS

DEFAULTS: dict[str, Any] = {"host": "h", "source": "evtx", "path": "case.evtx"}


def events_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Arrow table of the events schema; ``fields`` may be given as a dict; ``ts`` as ISO text."""
    full = []
    for number, row in enumerate(rows, start=1):
        item = {**DEFAULTS, "record_id": number, **row}
        if isinstance(item.get("fields"), dict | list):
            item["fields"] = orjson.dumps(item["fields"]).decode()
        if isinstance(item.get("ts"), str):
            item["ts"] = datetime.fromisoformat(item["ts"].replace("Z", "+00:00")).astimezone(UTC)
        full.append(item)
    return pa.Table.from_pylist(full, schema=EVENTS)


def connect_rows(rows: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    arrow = events_table(rows)  # noqa: F841 - read by DuckDB below
    con.execute("CREATE TABLE events AS SELECT * FROM arrow")
    return con


def ruleset_from_yaml(*documents: str | dict[str, Any]) -> RuleSet:
    from sigma.collection import SigmaCollection

    texts = [d if isinstance(d, str) else yaml.safe_dump(d, sort_keys=False) for d in documents]
    collection = SigmaCollection.from_yaml(
        "\n---\n".join(texts), collect_errors=True, resolve_references=False
    )
    ruleset = RuleSet(loaded=len(collection.rules))
    for rule in collection.rules:
        assert not rule.errors, rule.errors
    return convert(list(collection.rules), ruleset)


def matched(con: duckdb.DuckDBPyConnection, ruleset: RuleSet) -> dict[str, list[int]]:
    """Record ids matched per rule title."""
    result: dict[str, list[int]] = {}
    for query, rows in run_queries(con, ruleset).values():
        result[query.rule.title] = sorted({int(r["record_id"]) for r in rows})
    return result
