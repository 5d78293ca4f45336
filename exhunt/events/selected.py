"""``--index full`` keeps every line, but its detections read only the rows triage would have read:
the IIS and HttpProxy rows its prefilter selects (the workers store them a second time, in
``selected_events``) and every row of the other logs. A check can only hit a line its prefilter
matches (``Check.prefilter``; the triage/full oracle tests hold every check to it), so the findings
are the same; the checks' ~150 queries no longer scan every web row (measured on the 2 GB bench
corpus's 8 M rows: ~4 s of the scan on 2 cores). The mailbox impact reads that selection too, with
the rows triage's pivot pass would add (``add_rows``, ``detections.impact.pivot_rows``), on its own
connection (``only_here``) while the host assessments count every row on another cursor.
``exhunt query`` and the report read every row: ``restore`` once the impact is done."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from exhunt.events.store import public_view, refresh_views
from exhunt.sqltext import literal

if TYPE_CHECKING:
    import duckdb

SELECTED = "selected_events"
ADDED = "added_events"  # web rows ``add_rows`` added to the selection (in memory: the attacker's rows)
SELECTION = "selection_stored"  # the selected web rows, every other row and the added ones
# the rows of logs other than IIS and HttpProxy (only web rows keep their #Fields header): their row
# groups are found by raw_header's null count, web rows' groups skipped unread
OTHER_ROWS = "raw_header IS NULL"
# up to this many other rows are copied into memory once (most queries then read no part at all)
IN_MEMORY_ROWS = 200_000


def use_selected(con: duckdb.DuckDBPyConnection, store: Path) -> None:
    """Point ``events`` and ``events_stored`` at the selected web rows and every other row, for every
    cursor of ``con``'s database (the checks run on cursors of their own)."""
    every = _every_row(store)
    if every is None:
        return  # no rows at all: ``events`` is the empty table already
    others = f"SELECT * FROM {every} WHERE {OTHER_ROWS}"
    if _count(con, f"({others})") <= IN_MEMORY_ROWS:
        con.execute(f"CREATE OR REPLACE TABLE other_events AS {others}")
        others = "FROM other_events"  # a table, not TEMP: the checks run on cursors of their own
    con.execute(f"CREATE OR REPLACE TABLE {ADDED} AS SELECT * FROM {every} LIMIT 0")
    con.execute(f"CREATE OR REPLACE VIEW {SELECTION} AS SELECT * FROM {SELECTED} UNION ALL BY NAME {others} "
                f"UNION ALL BY NAME FROM {ADDED}")
    _drop(con, "events")
    _drop(con, "events_stored")
    con.execute(f"CREATE VIEW events_stored AS FROM {SELECTION}")
    con.execute(f"CREATE VIEW events AS {public_view('events', 'FROM events_stored')}")


def only_here(con: duckdb.DuckDBPyConnection, store: Path) -> None:
    """After ``use_selected``: ``events`` over every row again for the other cursors, the selection
    for ``con`` alone (TEMP views, which only ``con`` sees, shadow the shared ones)."""
    if not _exists(con, SELECTION):
        return
    refresh_views(con, store, ["events"])
    con.execute(f"CREATE TEMP VIEW events_stored AS FROM {SELECTION}")
    con.execute(f"CREATE TEMP VIEW events AS {public_view('events', 'FROM events_stored')}")


def add_rows(con: duckdb.DuckDBPyConnection, store: Path, filters: Sequence[str]) -> int:
    """After ``use_selected``: add to the selection every web row of the store that one of ``filters``
    (SQL over the events' columns) matches and the selection lacks; the number added. Only web rows
    can be missing (the others are all in). Two reads: the filters' narrow columns over every row
    give the files, then whole rows are read from those files' row groups alone."""
    every = _every_row(store)
    if every is None or not filters:
        return 0
    where = f"raw_header IS NOT NULL AND ({' OR '.join(f'({f})' for f in filters)})"
    paths = sorted(p for (p,) in con.execute(f"SELECT DISTINCT path FROM {every} WHERE {where}").fetchall())
    if not paths:
        return 0
    chosen = ", ".join(literal(p) for p in paths)
    before = _count(con, ADDED)
    con.execute(f"""
        INSERT INTO {ADDED} SELECT * FROM {every} e
        WHERE path IN ({chosen}) AND {where}
          AND NOT EXISTS (SELECT 1 FROM {SELECTED} s WHERE s.host = e.host AND s.path = e.path AND s.line = e.line)
          AND NOT EXISTS (SELECT 1 FROM {ADDED} a WHERE a.host = e.host AND a.path = e.path AND a.line = e.line)""")
    return _count(con, ADDED) - before


def restore(con: duckdb.DuckDBPyConnection, store: Path) -> None:
    """``events`` over every stored row again, for every cursor."""
    shadowed = _exists(con, "events", "temp")
    con.execute("DROP VIEW IF EXISTS temp.events")
    con.execute("DROP VIEW IF EXISTS temp.events_stored")
    if not shadowed:
        _drop(con, "events")
        _drop(con, "events_stored")
    con.execute(f"DROP VIEW IF EXISTS {SELECTION}")
    con.execute("DROP TABLE IF EXISTS other_events")
    con.execute(f"DROP TABLE IF EXISTS {ADDED}")
    if not shadowed:
        refresh_views(con, store, ["events"])


def _every_row(store: Path) -> str | None:
    """Every stored row's parts, as a table expression (None: no part)."""
    folder = store / "events"
    parts = sorted(folder.rglob("*.parquet")) if folder.exists() else []
    if not parts:
        return None
    files = ", ".join(literal(str(p)) for p in parts)
    return f"read_parquet([{files}], union_by_name=true, hive_partitioning=false)"


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    found = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(found[0]) if found else 0


def _exists(con: duckdb.DuckDBPyConnection, name: str, catalog: str | None = None) -> bool:
    found = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
                        "AND (? IS NULL OR table_catalog = ?)", [name, catalog, catalog]).fetchone()
    return bool(found and found[0])


def _drop(con: duckdb.DuckDBPyConnection, name: str) -> None:
    kinds = con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = ? "
                        "AND table_catalog <> 'temp'", [name]).fetchall()
    for (kind,) in kinds:
        con.execute(f"DROP VIEW {name}" if kind == "VIEW" else f"DROP TABLE {name}")
