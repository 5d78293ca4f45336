"""The scan's store connection filled as units end (``events.preload``): the same tables, rows and
columns as ``store.connect`` over the finished store, whatever came early, late, big or broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.errors import CaseError
from exhunt.events import preload
from exhunt.events.preload import PartLoader
from exhunt.events.store import StoreWriter, connect

QUERIES = ("SELECT * FROM events ORDER BY event_id", "SELECT * FROM warnings ORDER BY message",
           "SELECT * FROM files ORDER BY path", "SELECT * FROM host_facts ORDER BY fact",
           "DESCRIBE events", "DESCRIBE events_stored", "DESCRIBE files", "DESCRIBE warnings", "DESCRIBE matches")


def _unit(store: Path, host: str, part: str, number: int) -> None:
    with StoreWriter(store, host, part=part) as writer:
        writer.add("events", {"host": host, "path": f"{part}.log", "event_id": number, "fields": '{"k":"v"}'})
        writer.add("files", {"host": host, "path": f"{part}.log", "sha256": "0" * 64})
        writer.add("host_facts", {"host": host, "fact": f"f{number}", "value": str(number)})


def _same_as_connect(con, store: Path) -> None:  # type: ignore[no-untyped-def]
    fresh = connect(store)
    for query in QUERIES:
        assert con.execute(query).fetchall() == fresh.execute(query).fetchall(), query


def _loaded(store: Path, units: int) -> PartLoader:
    loader = PartLoader(store, threads=2)
    for number in range(units):
        _unit(store, "EXCH01" if number % 2 else "EXCH 02", f"u-{number:04d}", number)
        loader.unit_done("EXCH01" if number % 2 else "EXCH 02", f"u-{number:04d}")
    return loader


def test_units_copied_early_and_parts_that_came_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Units copied in batches as they end, the last ones and the listing's warnings part by
    ``connect``: every table as a fresh connection reads it, ``events`` the view over the copy."""
    monkeypatch.setattr(preload, "BATCH", 2)
    copied: list[int] = []
    real = PartLoader._copy
    monkeypatch.setattr(PartLoader, "_copy", lambda self, units: (copied.append(len(units)), real(self, units)))
    loader = _loaded(tmp_path, 5)
    with StoreWriter(tmp_path, "EXCH01", part="listing-1") as writer:
        writer.add("warnings", {"host": "EXCH01", "artifact": "evidence", "path": "x", "message": "unreadable"})
    con = loader.connect()
    assert copied == [2, 2]  # the fifth unit was left to ``connect``
    kinds = dict(con.execute("SELECT table_name, 'TABLE' FROM duckdb_tables() UNION ALL "
                             "SELECT view_name, 'VIEW' FROM duckdb_views() WHERE NOT internal").fetchall())
    assert kinds["events_stored"] == "TABLE" and kinds["events"] == "VIEW"
    assert con.execute("SELECT count(*) FROM events").fetchone() == (5,)
    _same_as_connect(con, tmp_path)


def test_a_table_that_outgrows_memory_becomes_a_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exhunt.events import store

    monkeypatch.setattr(preload, "BATCH", 1)
    monkeypatch.setattr(store, "IN_MEMORY_BYTES", 3000)  # a part or two of each table, not five
    con = _loaded(tmp_path, 5).connect()
    kinds = dict(con.execute("SELECT table_name, 'TABLE' FROM duckdb_tables() UNION ALL "
                             "SELECT view_name, 'VIEW' FROM duckdb_views() WHERE NOT internal").fetchall())
    assert kinds["events_stored"] == "VIEW"
    _same_as_connect(con, tmp_path)


def test_a_copied_part_gone_before_connect_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A part copied early and deleted later (rewritten by a merge): the table is made from scratch."""
    monkeypatch.setattr(preload, "BATCH", 1)
    loader = _loaded(tmp_path, 3)
    loader._thread.shutdown(wait=True)  # the copies done
    for path in tmp_path.rglob("u-0001.parquet"):
        path.unlink()
    con = loader.connect()
    assert con.execute("SELECT count(*) FROM events").fetchone() == (2,)
    _same_as_connect(con, tmp_path)


def test_a_damaged_part_is_reported_as_connect_reports_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A part that cannot be read when its unit ends: nothing is lost or half-copied, ``connect``
    reads the store again and says it is damaged."""
    monkeypatch.setattr(preload, "BATCH", 1)
    loader = _loaded(tmp_path, 2)
    _unit(tmp_path, "EXCH01", "u-bad", 9)
    next(tmp_path.rglob("events/*/u-bad.parquet")).write_bytes(b"PAR1 truncated")
    loader.unit_done("EXCH01", "u-bad")
    with pytest.raises(CaseError, match="damaged"):
        connect(tmp_path)
    with pytest.raises(CaseError, match="damaged"):
        loader.connect()


def test_nothing_copied_yet_is_a_plain_connect(tmp_path: Path) -> None:
    _unit(tmp_path, "EXCH01", "u-1", 1)
    con = PartLoader(tmp_path).connect()
    _same_as_connect(con, tmp_path)
