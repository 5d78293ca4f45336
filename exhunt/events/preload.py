"""The scan's store connection, filled while the workers parse.

``store.connect`` copies the small tables' parts into an in-memory DuckDB (``IN_MEMORY_BYTES``):
~1 ms a part a table, 0.12 s for the 2 GB bench corpus's 36 units, on the scan process's serial
path between the last unit and the detections. Here each unit's parts are copied as the unit ends,
on a thread of the scan process (which only waits during the parse), and ``connect`` adds what
came after (the listing's and the merged split files' parts, an earlier scan's kept by --resume).
The tables come out as ``store.connect`` makes them: the schema's columns, every part's rows.

Every unit of the first pass is copied as it ends, a split file's ranges and its whole-file pass
too (their parts are final; the file's merged warnings and facts come after, to ``connect``: a
2.8 GB EVTX file's 45 parts left to it cost 0.19 s of the serial tail); a table that outgrows
``IN_MEMORY_BYTES`` is left to ``connect``, which makes it a view; any error here leaves everything
to ``connect`` (an early copy is a head start, never the only way in).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from exhunt.events import store as stored
from exhunt.events.schema import TABLES
from exhunt.events.store import connect, part_path, public_view
from exhunt.sqltext import literal

if TYPE_CHECKING:
    import duckdb


BATCH = 8  # units copied together


def _target(name: str) -> str:
    """The table a store table's rows are copied into (``events`` is a view over its copy)."""
    return "events_stored" if name == "events" else name


class PartLoader:
    """Copies finished units' parts into the connection ``connect`` later returns."""

    def __init__(self, store: Path, threads: int = 0, memory_limit: str | None = None) -> None:
        self.store = store
        self._options = (threads, memory_limit)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._loaded: dict[str, set[Path]] = {}  # table -> parts copied
        self._bytes: dict[str, int] = {}
        self._left: set[str] = set()  # tables left to ``connect`` (too big, or an error)
        self._failed = False
        self._pending: list[tuple[str, str]] = []  # units ended since the last batch
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="exhunt-preload")

    def unit_done(self, host: str, part: str) -> None:
        """A unit's parts are complete: copied with the next ``BATCH`` units' (a statement
        a table costs ~1.5 ms however few rows it copies: one per unit cost more than ``connect``)."""
        self._pending.append((host, part))
        if len(self._pending) >= BATCH:
            batch, self._pending = self._pending, []
            self._thread.submit(self._copy, batch)

    def _copy(self, units: list[tuple[str, str]]) -> None:
        if self._failed:
            return
        try:
            if self._con is None:
                threads, memory_limit = self._options
                self._con = connect(self.store, threads=threads, memory_limit=memory_limit, tables=())
            for name in TABLES:
                paths = [path for host, part in units if (path := part_path(self.store, name, host, part)).exists()]
                if name not in self._left and paths:
                    self._add(self._con, name, paths)
        except Exception:  # noqa: BLE001 - ``connect`` reads every part again and reports what is wrong
            self._failed = True

    def _add(self, con: duckdb.DuckDBPyConnection, name: str, paths: list[Path]) -> None:
        size = self._bytes.get(name, 0) + sum(p.stat().st_size for p in paths)
        if size > stored.IN_MEMORY_BYTES:
            self._left.add(name)
            return
        if name not in self._loaded:
            empty = TABLES[name].empty_table()  # noqa: F841  (referenced by DuckDB below)
            con.execute(f"CREATE TABLE {_target(name)} AS SELECT * FROM empty")
            self._loaded[name] = set()
        files = ", ".join(literal(str(p)) for p in paths)
        con.execute(f"INSERT INTO {_target(name)} BY NAME SELECT * FROM "
                          f"read_parquet([{files}], union_by_name=true, hive_partitioning=false)")
        self._loaded[name].update(paths)
        self._bytes[name] = size

    def connect(self) -> duckdb.DuckDBPyConnection:
        """The connection ``store.connect(store, threads=..., memory_limit=...)`` would return."""
        self._thread.shutdown(wait=True)
        con, self._con = self._con, None
        if con is not None and not self._failed:
            try:
                for name in TABLES:
                    self._finish(con, name)
                return con
            except Exception:  # noqa: BLE001 - read every part again below, which reports what is wrong
                pass
        if con is not None:
            con.close()
        threads, memory_limit = self._options
        return connect(self.store, threads=threads, memory_limit=memory_limit)

    def _finish(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        loaded = self._loaded.get(name)
        if loaded is None:  # nothing copied early: as ``store.connect`` makes it
            stored.refresh_views(con, self.store, [name])
            return
        parts = stored.parts_of(self.store, name)
        complete = loaded <= set(parts)  # else a part copied is gone (a split file's, merged)
        if complete and name not in self._left and (new := [p for p in parts if p not in loaded]):
            self._add(con, name, new)  # may find the table outgrowing memory
        if not complete or name in self._left:  # from scratch
            con.execute(f"DROP TABLE {_target(name)}")
            stored.refresh_views(con, self.store, [name])
        elif name == "events":
            con.execute(f"CREATE VIEW events AS {public_view(name, 'FROM events_stored')}")

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        if self._con is not None:
            with contextlib.suppress(Exception):
                self._con.close()
            self._con = None
