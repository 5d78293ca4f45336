"""Store writer: dict rows, tuple rows and Arrow batches land as the same rows, small pieces grouped."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exhunt.events.schema import EVENTS
from exhunt.events.store import BATCH_ROWS, StoreWriter, connect, write_table

NAMES = ("host", "path", "event_id", "message")


def _rows(store: Path) -> list[tuple]:
    con = connect(store)
    return con.execute('SELECT host, path, event_id, message FROM events ORDER BY event_id').fetchall()


def test_tuple_rows_dict_rows_and_batches_mix(tmp_path: Path) -> None:
    with StoreWriter(tmp_path, "h", part="p") as writer:
        events = writer.table("events")
        events.add_values(NAMES, ("h", "a.evtx", 1, "one"))
        events.add({"host": "h", "path": "b.evtx", "event_id": 2, "message": None})
        events.add_values(NAMES, ("h", "a.evtx", 3, None))
        events.add_batch(pa.table({"host": ["h"], "path": ["c"], "event_id": pa.array([4], pa.int32())}))
        events.add_values(NAMES, ("h", "a.evtx", 5, "five"))
        assert writer.counts() == {"events": 5}
    assert _rows(tmp_path) == [
        ("h", "a.evtx", 1, "one"), ("h", "b.evtx", 2, None), ("h", "a.evtx", 3, None),
        ("h", "c", 4, None), ("h", "a.evtx", 5, "five"),
    ]


def test_surrogate_escaped_path_in_tuple_rows_is_printed(tmp_path: Path) -> None:
    name = b"bad-\xff.evtx".decode("utf-8", "surrogateescape")
    with StoreWriter(tmp_path, "h", part="p") as writer:
        writer.table("events").add_values(NAMES, ("h", name, 1, "x"))
    assert _rows(tmp_path) == [("h", "bad-\\xff.evtx", 1, "x")]


def test_many_small_batches_share_row_groups(tmp_path: Path) -> None:
    with StoreWriter(tmp_path, "h", part="p") as writer:
        for n in range(300):  # one short file each, as EVTX samples are
            writer.table("events").add_batch(pa.table({"event_id": pa.array([n] * 7, pa.int32())}))
    meta = pq.ParquetFile(tmp_path / "events" / "host=h" / "p.parquet").metadata
    assert meta.num_rows == 2100
    assert meta.num_row_groups == 1 <= -(-2100 // BATCH_ROWS)
    assert pq.read_schema(tmp_path / "events" / "host=h" / "p.parquet").equals(EVENTS)


def test_a_row_naming_a_column_the_table_lacks_fails_loudly(tmp_path: Path) -> None:
    """Arrow's from_pylist would drop the misspelt key and its value without a word."""
    with StoreWriter(tmp_path, "h") as writer:
        with pytest.raises(ValueError, match="client_addr"):
            writer.add("events", {"host": "h", "client_addr": "203.0.113.9"})
        with pytest.raises(ValueError, match="client_addr"):
            writer.table("events").add_values(("host", "client_addr"), ("h", "203.0.113.9"))
        with pytest.raises(ValueError, match="client_addr"):
            writer.table("events").add_batch(pa.table({"host": ["h"], "client_addr": ["203.0.113.9"]}))
        writer.add("events", {"host": "h", "client_ip": "203.0.113.9"})  # known columns still fine
    with pytest.raises(ValueError, match="mesage"):
        write_table(tmp_path, "warnings", [{"host": "h", "mesage": "typo"}])


def test_small_tables_stay_views_for_a_reader_of_few_rows(tmp_path: Path) -> None:
    """``copy_small=False`` (the report's timeline): no table is copied, and queries see the same rows."""
    with StoreWriter(tmp_path, "h", part="first") as writer:
        writer.add("events", {"host": "h", "path": "a.log", "event_id": 1})
        writer.add("files", {"host": "h", "path": "a.log", "size": 3})
    copied, read = connect(tmp_path), connect(tmp_path, copy_small=False)
    tables = "SELECT table_name FROM duckdb_tables() WHERE table_name IN ('events_stored', 'files')"
    assert len(copied.execute(tables).fetchall()) == 2 and read.execute(tables).fetchall() == []
    for query in ("SELECT * FROM events", "SELECT * FROM files"):
        assert read.execute(query).fetchall() == copied.execute(query).fetchall()


@pytest.mark.parametrize("in_memory", [True, False])
def test_small_tables_are_read_into_memory_and_refreshed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         in_memory: bool) -> None:
    """A small table is one in-memory copy (queried ~150 times by the detections), a big one a view
    over its parts; both see the parts written later once refreshed (the pivot pass's rows). The
    events' copy is of their stored columns, ``events`` a view over it."""
    from exhunt.events import store

    if not in_memory:
        monkeypatch.setattr(store, "IN_MEMORY_BYTES", 0)
    with StoreWriter(tmp_path, "h", part="first") as writer:
        writer.add("events", {"host": "h", "path": "a.log", "event_id": 1})
    con = connect(tmp_path)
    kinds = {name: kind for name, kind in con.execute(
        "SELECT table_name, 'TABLE' FROM duckdb_tables() UNION ALL "
        "SELECT view_name, 'VIEW' FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert kinds["events_stored"] == ("TABLE" if in_memory else "VIEW")  # the rows as stored
    assert kinds["events"] == "VIEW"  # ``fields`` derived only where a query reads it
    with StoreWriter(tmp_path, "h", part="later") as writer:
        writer.add("events", {"host": "h", "path": "b.log", "event_id": 2})
    store.refresh_views(con, tmp_path, ["events"])
    assert con.execute("SELECT path FROM events ORDER BY event_id").fetchall() == [("a.log",), ("b.log",)]


@pytest.mark.parametrize("in_memory", [True, False])
def test_new_parts_join_the_copy_as_a_refresh_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    in_memory: bool) -> None:
    """``add_new_parts`` (after the pivot pass): the in-memory copy takes the new parts alone, a
    view is refreshed; either way every table reads as a fresh connection does."""
    from exhunt.events import store

    if not in_memory:
        monkeypatch.setattr(store, "IN_MEMORY_BYTES", 0)
    with StoreWriter(tmp_path, "h", part="first") as writer:
        writer.add("events", {"host": "h", "path": "a.log", "event_id": 1, "fields": '{"k":"v"}'})
    con = connect(tmp_path)
    known = [p for t in ("events", "warnings") for p in store.parts_of(tmp_path, t)]
    with StoreWriter(tmp_path, "h", part="p-later") as writer:
        writer.add("events", {"host": "h", "path": "b.log", "event_id": 2, "client_ip": "203.0.113.7"})
        writer.add("warnings", {"host": "h", "path": "b.log", "message": "bad line"})
    refreshed: list[str] = []
    real = store.refresh_views
    monkeypatch.setattr(store, "refresh_views", lambda c, s, names: (refreshed.extend(names), real(c, s, names)))
    store.add_new_parts(con, tmp_path, ("events", "warnings"), known)
    assert refreshed == ([] if in_memory else ["events", "warnings"])
    fresh = connect(tmp_path)
    for query in ("SELECT * FROM events ORDER BY event_id", "SELECT * FROM warnings", "DESCRIBE events"):
        assert con.execute(query).fetchall() == fresh.execute(query).fetchall(), query
    assert con.execute("SELECT count(*) FROM events_stored").fetchone() == (2,)


def test_times_are_utc_on_every_cursor_whatever_the_analysts_zone(tmp_path: Path) -> None:
    """Under TZ=America/New_York the store's connection gave times in New York time, and a time
    literal in a WHERE was read as New York time (14 rows became 0)."""
    import os
    import subprocess
    import sys
    from datetime import UTC, datetime

    writer = StoreWriter(tmp_path / "store", "h")
    writer.add("events", {"host": "h", "source": "iis", "path": "u.log", "line": 1,
                          "ts": datetime(2021, 3, 3, 2, 10, 30, tzinfo=UTC)})
    writer.close()
    probe = ("import sys\nfrom pathlib import Path\nfrom exhunt.events.store import connect\n"
             "con = connect(Path(sys.argv[1]))\n"
             "for c in (con, con.cursor()):\n"
             "    (ts,), = c.execute('SELECT ts FROM events').fetchall()\n"
             "    (n,), = c.execute(\"SELECT count(*) FROM events WHERE ts >= '2021-03-03 02:10:00' "
             "AND ts < '2021-03-03 02:11:00'\").fetchall()\n"
             "    print(ts.isoformat(), n)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "store")], capture_output=True, text=True,
                          env={**os.environ, "TZ": "America/New_York"}, check=True, timeout=60)
    assert done.stdout.split("\n")[:2] == ["2021-03-03T02:10:30+00:00 1"] * 2
