"""The case store: Parquet parts written in batches, read back as DuckDB views.

Layout: ``<store>/<table>/host=<host>/<part>.parquet``. Every writer owns its own part files, so
worker processes never share a file, and a rerun of detections needs only the Parquet parts.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from exhunt.errors import CaseError
from exhunt.events.schema import TABLES
from exhunt.sqltext import literal

if TYPE_CHECKING:  # imported where a connection is made: the workers' fork server, and triage
    import duckdb  # workers, never need DuckDB (~0.05 s of the server's start, on the scan's path)

BATCH_ROWS = 20_000
# A table whose parts hold fewer bytes is read into memory once (a triage store of 2 GB of logs:
# under 2 MB): the detections then run ~150 queries on it instead of opening every part each time
# (0.55-0.67 s against 0.13-0.15 s plus 0.07-0.12 s to load on the 2 GB bench corpus's store).
# Bigger tables (--index full) stay views over the parts: memory stays bounded.
IN_MEMORY_BYTES = 8 << 20

Row = Mapping[str, Any]
# Columns whose values rarely repeat: Parquet's writer would try a dictionary for each row group and
# give it up (measured on the quick bench corpus's events: 8-20% of the write time, 5-13% of the bytes)
PLAIN = {name: frozenset({"raw", "fields", "line", "record_id", "ts"}) for name in ("events", "selected_events")}
# A full index writes every line: LZ4 cost ~25% less write time than zstd (quick bench corpus, 0.33 against
# 0.44 s per 400k rows) for ~1.7x the bytes (raw: 18 against 10 MB)
CODEC = {"events": "lz4"}
# No min/max statistics for long text nobody filters on by range (each value is compared to keep them;
# ~5% of the write); raw_header keeps them: its null count lets a scan skip the row groups of web rows
# (``events.selected``)
NO_STATISTICS = {"events": frozenset({"raw", "fields", "uri", "uri_query", "uri_decoded", "user_agent", "message",
                                      "command_line", "parent_command_line", "parameters"})}


def _safe(name: str) -> str:
    """Host names become folder names: keep them portable and inside the store."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".")
    return cleaned or "_"


def part_path(store: Path, table: str, host: str, part: str) -> Path:
    """Where a writer of ``host`` puts part ``part`` of ``table``."""
    return store / table / f"host={_safe(host)}" / f"{part}.parquet"


# A part is written under this suffix and renamed to ``.parquet`` once closed: a scan killed while a
# part was open (kill -9, power loss) left a ``.parquet`` without its footer, and every later read of
# the store (``--resume`` first) failed on it. Leftovers are deleted by the next scan (``drop_unfinished``).
WRITING = ".writing"


def writing_path(path: Path) -> Path:
    return path.with_name(path.name + WRITING)


def write_whole(table: pa.Table, path: Path) -> None:
    """``table`` as the Parquet file ``path``, whole or not at all (written aside, then renamed)."""
    aside = writing_path(path)
    pq.write_table(table, aside, compression="zstd")
    aside.replace(path)


def drop_unfinished(store: Path) -> None:
    """Delete the parts a killed scan left open (and the tables it was rewriting)."""
    if store.exists():
        for path in store.rglob(f"*{WRITING}"):
            path.unlink(missing_ok=True)


def _printable(row: Row) -> dict[str, Any]:
    """Undecodable bytes in names become ``\\xNN`` text: kept visible, never a crash."""
    return {k: _text(v) if isinstance(v, str) else v for k, v in row.items()}


def _text(value: str) -> str:
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def unknown_columns(table: str, names: Iterable[str], known: frozenset[str]) -> None:
    """Arrow's ``from_pylist`` silently drops a key the schema lacks: a misspelt column would lose its
    values without a word. A row that names a column the table does not have is a bug: fail loudly."""
    raise ValueError(f"store table {table!r} has no column(s) {sorted(set(names) - known)}")


class TableWriter:
    """Buffers rows of one table and writes them as row groups of one Parquet part."""

    def __init__(self, store: Path, table: str, host: str, part: str) -> None:
        self.schema = TABLES[table]
        self.table = table
        self._known = frozenset(self.schema.names)
        self.path = part_path(store, table, host, part)
        self._rows: list[Row] = []
        self._pending: list[pa.Table] = []  # Arrow rows not yet written (kept in arrival order)
        self._pending_rows = 0
        self._names: tuple[str, ...] = ()
        self._values: list[tuple[Any, ...]] = []
        self._writer: pq.ParquetWriter | None = None
        self.count = 0

    def add(self, row: Row) -> None:
        if not self._known.issuperset(row):
            unknown_columns(self.table, row, self._known)
        if self._values:
            self._pend(self._values_table())
        self._rows.append(row)
        if len(self._rows) >= BATCH_ROWS:
            self.flush()

    def add_values(self, names: tuple[str, ...], values: tuple[Any, ...]) -> None:
        """One row as a tuple of the columns ``names`` (the same tuple object for every row): the hot
        paths' way to skip a dict per row; buffered rows become Arrow columns once per batch."""
        if self._rows:
            self._pend(self._rows_table())
        if names is not self._names:
            if not self._known.issuperset(names):
                unknown_columns(self.table, names, self._known)
            if self._values:
                self._pend(self._values_table())
        self._names = names
        self._values.append(values)
        if len(self._values) >= BATCH_ROWS:
            self.flush()

    def add_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Arrow rows from a fast path. Small batches (one short EVTX file each) are buffered and
        written together, so a part holds row groups of ``BATCH_ROWS``, not one per file."""
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        present = set(table.column_names)
        if not self._known.issuperset(present):
            unknown_columns(self.table, present, self._known)
        columns = [
            table.column(f.name).cast(f.type) if f.name in present else pa.nulls(table.num_rows, f.type)
            for f in self.schema
        ]
        self._pend(self._rows_table())
        self._pend(pa.Table.from_arrays(columns, schema=self.schema))
        if self._pending_rows >= BATCH_ROWS:
            self._write_pending()

    def flush(self) -> None:
        self._pend(self._rows_table())
        self._pend(self._values_table())
        self._write_pending()

    def _values_table(self) -> pa.Table | None:
        if not self._values:
            return None
        rows, self._values = self._values, []
        by_name = dict(zip(self._names, zip(*rows, strict=True), strict=True))
        try:
            arrays = [
                pa.array(by_name[f.name], f.type) if f.name in by_name else pa.nulls(len(rows), f.type)
                for f in self.schema
            ]
        except UnicodeEncodeError:  # surrogate-escaped names: the row path knows how to print them
            return pa.Table.from_pylist(
                [_printable(dict(zip(self._names, r, strict=True))) for r in rows], schema=self.schema
            )
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _rows_table(self) -> pa.Table | None:
        if not self._rows:
            return None
        try:
            table = pa.Table.from_pylist(self._rows, schema=self.schema)
        except UnicodeEncodeError:  # file names that are not UTF-8 (surrogate-escaped by os.scandir)
            table = pa.Table.from_pylist([_printable(r) for r in self._rows], schema=self.schema)
        self._rows = []
        return table

    def _pend(self, table: pa.Table | None) -> None:
        if table is not None and table.num_rows:
            self._pending.append(table)
            self._pending_rows += table.num_rows

    def _write_pending(self) -> None:
        if not self._pending:
            return
        table = self._pending[0] if len(self._pending) == 1 else pa.concat_tables(self._pending)
        self._pending = []
        self._pending_rows = 0
        self._write(table)

    def _write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            plain = PLAIN.get(self.table, frozenset())
            bare = NO_STATISTICS.get(self.table, frozenset())
            self._writer = pq.ParquetWriter(writing_path(self.path), self.schema,
                                            compression=CODEC.get(self.table, "zstd"),
                                            use_dictionary=[n for n in self.schema.names if n not in plain],
                                            write_statistics=[n for n in self.schema.names if n not in bare])
        self._writer.write_table(table)
        self.count += table.num_rows

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            writing_path(self.path).replace(self.path)


class StoreWriter:
    """One writer per task: lazily opens a part per table it is given rows for."""

    def __init__(self, store: Path, host: str, part: str | None = None) -> None:
        self.store = store
        self.host = host
        self.part = part or uuid.uuid4().hex
        self._tables: dict[str, TableWriter] = {}

    def table(self, name: str) -> TableWriter:
        if name not in self._tables:
            self._tables[name] = TableWriter(self.store, name, self.host, self.part)
        return self._tables[name]

    def add(self, table: str, row: Row) -> None:
        self.table(table).add(row)

    def extend(self, table: str, rows: Iterable[Row]) -> None:
        writer = self.table(table)
        for row in rows:
            writer.add(row)

    def counts(self) -> dict[str, int]:
        return {name: w.count + len(w._rows) + len(w._values) + w._pending_rows for name, w in self._tables.items()}

    def close(self) -> None:
        for writer in self._tables.values():
            writer.close()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_table(store: Path, table: str, rows: Sequence[Row], part: str = "all") -> None:
    """Replace one whole table (used for derived tables such as findings)."""
    folder = store / table
    if folder.exists():
        for old in folder.rglob("*.parquet"):
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    schema = TABLES.get(table)
    if schema is not None:
        known = frozenset(schema.names)
        for row in rows:
            if not known.issuperset(row):
                unknown_columns(table, row, known)
    arrow = pa.Table.from_pylist(list(rows), schema=schema) if schema else pa.Table.from_pylist(list(rows))
    if arrow.num_columns:
        write_whole(arrow, folder / f"{part}.parquet")


# ``fields`` of a row whose parts hold the line and its header instead of the JSON (schema.py): the
# line split on the header's separator (as CSV where a comma-separated line holds a quote: the writer
# checked it is minimally quoted), each value after its name, ``"`` and ``\`` escaped, as the parser's
# own ``orjson.dumps`` writes it (the writer stores the JSON wherever that would differ). Derived only
# for the rows a query reads ``fields`` of (~5 us a row); ``coalesce(raw, fields)`` reads the line.
VALUES_SQL = (
    """CASE WHEN "raw_header"[1] = ',' AND contains("raw", '"') THEN list_transform(regexp_extract_all("""
    """',' || "raw", ',("(?:[^"]|"")*"|[^,"]*)', 1), lambda v: CASE WHEN starts_with(v, '"') THEN """
    """replace(substring(v, 2, length(v) - 2), '""', '"') ELSE v END) """
    """ELSE string_split("raw", "raw_header"[1]) END"""
)
NAMES_SQL = 'string_split("raw_header"[2:], "raw_header"[1])'
FIELDS_SQL = (
    """coalesce("fields", '{' || array_to_string(list_transform(list_zip(string_split("raw_header"[2:], """
    f""""raw_header"[1]), {VALUES_SQL}), lambda p: '"' || p[1] || '":"' || """
    r"""replace(replace(p[2], '\', '\\'), '"', '\"') || '"'), ',') || '}')"""
)


def public_view(name: str, select: str) -> str:
    """The query of a table's view over ``select`` (its parts): ``events`` derives ``fields``."""
    return f"SELECT * REPLACE ({FIELDS_SQL} AS fields) FROM ({select})" if name == "events" else select


_DUCKDB_TYPES = {pa.string(): "VARCHAR", pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.bool_(): "BOOLEAN",
                 pa.float64(): "DOUBLE"}


def _missing_columns(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[str, str]]:
    """Columns of the table's schema that its parts do not have (and a DuckDB type for each)."""
    if name not in TABLES:
        return []
    present = {row[0] for row in con.execute(f"DESCRIBE {name}").fetchall()}
    return [(f.name, _DUCKDB_TYPES.get(f.type, "TIMESTAMPTZ" if pa.types.is_timestamp(f.type) else "VARCHAR"))
            for f in TABLES[name] if f.name not in present]


def connect(store: Path, extra_tables: Iterable[str] = (), threads: int = 0,
            memory_limit: str | None = None, tables: Iterable[str] | None = None,
            copy_small: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per store table (empty tables when nothing was written).
    ``threads`` > 0 caps DuckDB's threads (``scan --jobs``: the cores the scan may use);
    ``memory_limit`` caps its memory, spilling to a folder next to the store (never the evidence);
    ``tables``: only these of the store's tables (each costs a look at its parts, ~5 ms);
    ``copy_small=False``: small tables stay views too, for a reader of a few columns of a few rows
    (copying 32,000 EVTX rows with their ``fields`` JSON took ~0.17 s, the report's query ~0.05)."""
    config: dict[str, str | bool | int | float | list[str]] = {"threads": threads} if threads > 0 else {}
    if memory_limit:
        config["memory_limit"] = memory_limit
        config["temp_directory"] = str(store.parent / "duckdb-spill")
    import duckdb

    con = duckdb.connect(":memory:", config=config)
    # every cursor's too (a SET alone is the one connection's): times are UTC whatever the analyst's
    # zone; under TZ=America/New_York the query command printed local times, and a time literal in
    # a WHERE was read as New York time
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    names = list(TABLES) if tables is None else list(tables)
    names += [t for t in extra_tables if t not in names]
    if copy_small:
        refresh_views(con, store, names)
    else:
        refresh_views(con, store, names, copy_small=False)
    return con


def _is_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether ``name`` is a table (an empty one stood for a table without parts) and not a view."""
    found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchone()
    return bool(found and found[0])


def _drop(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"DROP TABLE IF EXISTS {name}" if _is_table(con, name) else f"DROP VIEW IF EXISTS {name}")


def parts_of(store: Path, name: str) -> list[Path]:
    return sorted((store / name).rglob("*.parquet")) if (store / name).exists() else []


def add_new_parts(con: duckdb.DuckDBPyConnection, store: Path, names: Iterable[str], known: Iterable[Path]) -> None:
    """``refresh_views`` after parts were added to those ``known`` (the triage pivot pass's): a table
    copied into memory takes the new parts alone (a full refresh read every part again: ~0.05 s of a
    2 GB scan's serial time, for 48 rows); a view, or new parts it cannot take, is refreshed."""
    import duckdb

    seen = set(known)
    for name in names:
        parts = parts_of(store, name)
        new = [p for p in parts if p not in seen]
        if not new:
            continue
        target = "events_stored" if name == "events" else name
        if _is_table(con, target) and sum(p.stat().st_size for p in parts) <= IN_MEMORY_BYTES:
            files = ", ".join(literal(str(p)) for p in new)
            try:
                con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM "
                            f"read_parquet([{files}], union_by_name=true, hive_partitioning=false)")
                continue
            except duckdb.Error:  # a column the copy lacks: the refresh below reads them all
                pass
        refresh_views(con, store, [name])


def refresh_views(con: duckdb.DuckDBPyConnection, store: Path, names: Iterable[str], copy_small: bool = True) -> None:
    """(Re)create the views of ``names`` over the parts now in the store (parts written since the
    connection opened, e.g. by the triage pivot pass, are read from then on); a small table's
    "view" is an in-memory copy of its parts (``IN_MEMORY_BYTES``), made again here."""
    import duckdb

    for name in names:
        parts = parts_of(store, name)
        if parts:
            files = ", ".join(literal(str(p)) for p in parts)
            small = copy_small and sum(p.stat().st_size for p in parts) <= IN_MEMORY_BYTES
            kind = "TABLE" if small else "VIEW"
            # values come from the files, never from folder names: host folders are sanitized
            # (host=EXCH01_triage for "EXCH01 triage") and a case may lie under any "x=y" folder
            select = f"SELECT * FROM read_parquet([{files}], union_by_name=true, hive_partitioning=false)"
            try:
                _drop(con, name)
                con.execute(f"CREATE VIEW {name} AS {select}")
                missing = _missing_columns(con, name)
                con.execute(f"DROP VIEW {name}")
                if missing:  # parts written by an older exhunt: newer columns read as NULL
                    extra = ", ".join(f"NULL::{duckdb_type} AS \"{col}\"" for col, duckdb_type in missing)
                    select = select.replace("SELECT * FROM", f"SELECT *, {extra} FROM", 1)
                if name == "events":  # the parts as stored (no ``fields`` derived): engines that read few
                    # keys. A small store is copied into memory as stored and ``fields`` derived only by
                    # the queries that read it (deriving it in the copy cost most of each refresh)
                    _drop(con, "events_stored")
                    con.execute(f"CREATE {kind} events_stored AS {select}")
                    con.execute(f"CREATE VIEW events AS {public_view(name, 'FROM events_stored')}")
                else:
                    con.execute(f"CREATE {kind} {name} AS {select}")
            except duckdb.Error as exc:  # a part truncated or overwritten: one readable line
                first = str(exc).splitlines()[0]
                raise CaseError(f"the case store {store} is damaged ({name}): {first}") from None
        elif name in TABLES:
            empty = TABLES[name].empty_table()  # noqa: F841  (referenced by DuckDB below)
            _drop(con, name)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM empty")
            if name == "events":
                _drop(con, "events_stored")
                con.execute("CREATE VIEW events_stored AS FROM events")
