"""The batched Sigma engine (rules sharing a logsource in one scan, repeated expressions computed
once per row) matches exactly the rows each rule's own query matches, on the demo's full store with
the reference EVTX samples (Sysmon, Security, MSExchange Management: the keyword rules) when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.detections.sigma import fields
from exhunt.detections.sigma.engine import run_queries
from exhunt.detections.sigma.loader import load_and_convert
from exhunt.events.store import connect
from tests.conftest import SHARED


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (SHARED / "evtx").is_dir():  # the demo's own rows hit no built-in Sigma rule
        pytest.skip(f"needs the reference EVTX samples in {SHARED / 'evtx'}: without them no rule matches")
    root = tmp_path_factory.mktemp("demo-sigma")
    generate(root / "evidence", DemoSpec(per_day=300, days=1))
    evidence = [root / "evidence", SHARED / "evtx"]
    scan(evidence, ScanOptions(out=root / "case", host="EXCH01", jobs=2, quiet=True, index="full"))
    return root / "case" / "store"


def _key(row: dict) -> tuple:
    return (row["host"], row["path"], row["line"] or 0, row["record_id"] or 0, row["excerpt"] or "")


def test_batches_match_each_rule_alone(demo_store: Path) -> None:
    packs = [SHARED / "rules" / "sigma"] if (SHARED / "rules" / "sigma").is_dir() else []
    ruleset = load_and_convert(packs, True)
    con = connect(demo_store)
    matches = run_queries(con, ruleset)
    assert matches, "the reference samples match some rule"
    side_by_side = run_queries(con, ruleset, jobs=2)  # queries on two cursors: the same, in order
    assert [(k, q.rule.title, rows) for k, (q, rows) in side_by_side.items()] == \
        [(k, q.rule.title, rows) for k, (q, rows) in matches.items()]
    batched = {rule: sorted(map(_key, rows)) for rule, (_, rows) in matches.items()}
    logsources = sorted({q.logsource for q in ruleset.queries if q.logsource})
    con.execute(f"CREATE TEMP TABLE {fields.TABLE} AS SELECT * FROM events WHERE "
                + " OR ".join(f"({ls})" for ls in logsources))
    alone: dict[int, list[tuple]] = {}
    for query in ruleset.queries:
        if not query.logsource:
            continue
        cursor = con.execute(f'SELECT "host", "path", "line", "record_id", {fields.EXCERPT} AS excerpt '
                             f"FROM {fields.TABLE} WHERE {query.sql}")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        if rows:
            alone[id(query.rule)] = sorted(map(_key, rows))
    detections = {k: v for k, v in batched.items() if k in {id(q.rule) for q in ruleset.queries if q.logsource}}
    assert detections == alone
    assert len(detections) >= (10 if packs else 1)  # many rules of every kind hit


class _Recording:
    """A connection that remembers the SQL it was given (the engine's own statements)."""

    def __init__(self, con: object) -> None:
        self.con = con
        self.sql: list[str] = []

    def execute(self, sql: str, *args: object) -> object:
        self.sql.append(sql)
        return self.con.execute(sql, *args)  # type: ignore[attr-defined]


def test_rows_in_memory_are_read_in_place_with_the_same_matches(demo_store: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A store small enough to be in memory already is not copied again for the rules (the copy of
    every EVTX row's JSON cost ~0.1 s on 32,000 rows); what matches is what the copy matched."""
    from exhunt.detections.sigma import engine

    packs = [SHARED / "rules" / "sigma"] if (SHARED / "rules" / "sigma").is_dir() else []
    ruleset = load_and_convert(packs, True)
    con = connect(demo_store)
    assert engine._in_memory(con, fields.STORED_TABLE)  # the demo's store is small
    recorded = _Recording(con)
    in_place = run_queries(recorded, ruleset)  # type: ignore[arg-type]
    assert not [s for s in recorded.sql if f"TABLE {fields.ROWS}" in s and "CREATE" in s]
    monkeypatch.setattr(engine, "_in_memory", lambda con, name: False)
    copied = _Recording(con)
    matches = run_queries(copied, ruleset)  # type: ignore[arg-type]
    assert [s for s in copied.sql if f"TABLE {fields.ROWS}" in s and "CREATE" in s]
    assert in_place and [(k, q.rule.title, sorted(map(_key, rows))) for k, (q, rows) in in_place.items()] == \
        [(k, q.rule.title, sorted(map(_key, rows))) for k, (q, rows) in matches.items()]
