"""``--index full`` keeps every line, but its detections read only the rows triage would have read:
the IIS and HttpProxy rows its prefilter selects (the workers store them a second time, in
``selected_events``) and every row of the other logs. A check can only hit a line its prefilter
matches (``Check.prefilter``; the triage/full oracle tests hold every check to it), so the findings
are the same; the checks' ~150 queries no longer scan every web row (measured on the 2 GB bench
corpus's 8 M rows: ~4 s of the scan on 2 cores). ``exhunt query``, the impact and the report still
read every row: ``restore`` points ``events`` back at them once the detections are done."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from exhunt.events.store import public_view, refresh_views
from exhunt.sqltext import literal

if TYPE_CHECKING:
    import duckdb

SELECTED = "selected_events"
# the rows of logs other than IIS and HttpProxy (only web rows keep their #Fields header): their row
# groups are found by raw_header's null count, web rows' groups skipped unread
OTHER_ROWS = "raw_header IS NULL"
# up to this many other rows are copied into memory once (most queries then read no part at all)
IN_MEMORY_ROWS = 200_000


def use_selected(con: duckdb.DuckDBPyConnection, store: Path) -> None:
    """Point ``events`` and ``events_stored`` at the selected web rows and every other row."""
    folder = store / "events"
    parts = sorted(folder.rglob("*.parquet")) if folder.exists() else []
    if not parts:
        return  # no rows at all: ``events`` is the empty table already
    files = ", ".join(literal(str(p)) for p in parts)
    others = (f"SELECT * FROM read_parquet([{files}], union_by_name=true, hive_partitioning=false) "
              f"WHERE {OTHER_ROWS}")
    counted = con.execute(f"SELECT count(*) FROM ({others})").fetchone()
    if counted is not None and counted[0] <= IN_MEMORY_ROWS:
        con.execute(f"CREATE OR REPLACE TABLE other_events AS {others}")
        others = "FROM other_events"  # a table, not TEMP: the checks run on cursors of their own
    _drop(con, "events")
    _drop(con, "events_stored")
    con.execute(f"CREATE VIEW events_stored AS SELECT * FROM {SELECTED} UNION ALL BY NAME {others}")
    con.execute(f"CREATE VIEW events AS {public_view('events', 'FROM events_stored')}")


def restore(con: duckdb.DuckDBPyConnection, store: Path) -> None:
    """``events`` over every stored row again."""
    _drop(con, "events")
    _drop(con, "events_stored")
    con.execute("DROP TABLE IF EXISTS other_events")
    refresh_views(con, store, ["events"])


def _drop(con: duckdb.DuckDBPyConnection, name: str) -> None:
    kinds = con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()
    for (kind,) in kinds:
        con.execute(f"DROP VIEW {name}" if kind == "VIEW" else f"DROP TABLE {name}")
