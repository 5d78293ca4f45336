"""Data-driven detection cases: every YAML under cases/ (rows in, expected findings out)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import yaml

from exhunt.detections.checks import CHECKS
from exhunt.detections.runner import prepare, run_checks
from exhunt.events.schema import TABLES
from exhunt.findings.triage import group_hits

CASES = Path(__file__).parent / "cases"
BY_ID = {check.id: check for check in CHECKS}
DEFAULTS = {"host": "h", "path": "case.log"}


def load_cases() -> list[Any]:
    params = []
    for file in sorted(CASES.glob("*.yml")):
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
        entries = document.get("cases", [document])
        for number, case in enumerate(entries, 1):
            case = {"check": document.get("check"), **case}
            params.append(pytest.param(case, id=f"{file.stem}#{number}:{case.get('name', '')}"))
    return params


def _value(name: str, value: Any) -> Any:
    if name in ("ts", "mtime", "ctime", "atime") and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if name == "fields" and isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)  # as the parsers write it (orjson)
    return value


def _expand(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row with ``repeat: N`` (and ``every: S`` seconds after its ``ts``) stands for N rows."""
    out = []
    for row in rows:
        count, step = row.get("repeat", 1), row.get("every", 0)
        base = {k: v for k, v in row.items() if k not in ("repeat", "every")}
        for n in range(count):
            item = dict(base)
            if n and "ts" in item:
                item["ts"] = _value("ts", item["ts"]) + timedelta(seconds=n * step)
            out.append(item)
    return out


def store_of(rows: dict[str, list[dict[str, Any]]]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with every store table, holding the case's rows."""
    con = duckdb.connect(":memory:")
    for table, schema in TABLES.items():
        given = _expand(rows.get(table) or [])
        unknown = {k for r in given for k in r} - set(schema.names)
        assert not unknown, f"unknown {table} columns in case: {sorted(unknown)}"
        full = [{**{k: v for k, v in DEFAULTS.items() if k in schema.names},
                 **{k: _value(k, v) for k, v in r.items()}} for r in given]
        arrow = pa.Table.from_pylist(full, schema=schema)  # noqa: F841  (read by DuckDB below)
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM arrow")
    return con


@pytest.mark.parametrize("case", load_cases())
def test_case(case: dict[str, Any]) -> None:
    check = BY_ID[case["check"]]()
    con = store_of(case.get("rows") or {})
    prepare(con)
    findings = group_hits(check, check.run(con))
    assert_expected(case["expect"], findings)


def assert_expected(expect: dict[str, Any], findings: list[Any]) -> None:
    """The case's ``expect`` block against the findings of its check."""
    summary = [(f.key, f.confidence, f.count) for f in findings]
    assert len(findings) == expect["findings"], summary
    if "keys" in expect:
        assert sorted(f.key for f in findings) == sorted(expect["keys"]), summary
    confidence = expect.get("confidence")
    if isinstance(confidence, str):
        assert {f.confidence for f in findings} == {confidence}, summary
    elif isinstance(confidence, list) and "keys" in expect:
        by_key = {f.key: f.confidence for f in findings}
        assert [by_key[k] for k in expect["keys"]] == confidence, summary
    elif isinstance(confidence, list):
        assert sorted(f.confidence for f in findings) == sorted(confidence), summary
    hits = expect.get("hits", expect.get("rows"))
    if hits is not None:
        assert sum(f.count for f in findings) == hits, summary
    for finding in findings:
        assert finding.evidence and finding.remediation and finding.references


def test_every_check_has_positive_and_negative_cases() -> None:
    seen: dict[str, set[bool]] = {}
    for param in load_cases():
        case = param.values[0]
        seen.setdefault(case["check"], set()).add(case["expect"]["findings"] > 0)
    missing = [check.id for check in CHECKS if seen.get(check.id) != {True, False}]
    assert not missing, f"checks without a positive and a negative case: {missing}"


def test_checks_side_by_side_give_the_same_findings() -> None:
    """``run_checks(jobs=3)`` (one cursor per check, threads) equals the one-at-a-time run on a store
    holding every case's rows, each case under its own host names."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for number, param in enumerate(load_cases()):
        for table, rows in (param.values[0].get("rows") or {}).items():
            for row in rows:
                host = f"{number}-{row.get('host', DEFAULTS['host'])}"
                merged.setdefault(table, []).append({**row, "host": host} if "host" in TABLES[table].names else row)
    con = store_of(merged)
    one_rows: list[dict] = []
    side_rows: list[dict] = []
    one = run_checks(con, [c() for c in CHECKS], one_rows)
    side = run_checks(con, [c() for c in CHECKS], side_rows, jobs=3)
    assert len(one) > len(CHECKS) // 2  # most checks found something: the comparison means something
    assert side == one
    assert side_rows == one_rows
