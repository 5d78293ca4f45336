"""Read-only SQL over a case: the store tables as DuckDB views plus ``hosts`` from the document.

Only one SELECT statement is accepted; extension auto-loading is off and no file outside the
case's store can be read, so a query can neither change the case, read the machine's files nor
reach the network (``read_parquet('https://...')`` fails instead of downloading httpfs).
Results stream in batches to a table, CSV or a JSON array.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import orjson
import pyarrow as pa

from exhunt.errors import CaseError, UsageError
from exhunt.events.store import connect
from exhunt.findings.model import AssessmentDocument
from exhunt.reports.case import HITS_DDL, has_table
from exhunt.reports.csv_timeline import spreadsheet_cell

ALLOWED = {duckdb.StatementType.SELECT}  # not EXPLAIN: EXPLAIN ANALYZE runs the statement it explains
TABLE_ROWS = 1_000
FETCH_ROWS = 5_000

# What the README documents; checked by a test against the views a case actually has.
TABLES = ("events", "files", "host_facts", "warnings", "findings", "hits", "hosts")


def hosts_table(doc: AssessmentDocument | None) -> pa.Table:
    if doc is None:
        doc = AssessmentDocument("", "", "", (), ())
    rows = [{"host": h.host, "verdict": h.verdict, "build": h.build.build if h.build else None,
             "product": h.build.product if h.build else None, "first_seen": h.first_seen,
             "last_seen": h.last_seen, "files": h.coverage.files, "events": h.coverage.events,
             "warnings": h.coverage.warnings, "findings": len([f for f in doc.findings if f.host == h.host])}
            for h in doc.hosts]
    schema = pa.schema([("host", pa.string()), ("verdict", pa.string()), ("build", pa.string()),
                        ("product", pa.string()), ("first_seen", pa.string()), ("last_seen", pa.string()),
                        ("files", pa.int64()), ("events", pa.int64()), ("warnings", pa.int64()),
                        ("findings", pa.int64())])
    return pa.Table.from_pylist(rows, schema=schema)


def open_case(case_dir: Path, doc: AssessmentDocument | None) -> duckdb.DuckDBPyConnection:
    store = case_dir / "store"
    if not store.is_dir():
        raise CaseError(f"{case_dir} has no store/ folder (run 'exhunt scan --out {case_dir}' first)")
    con = connect(store, extra_tables=("findings", "hits"))
    if not has_table(con, "hits"):
        con.execute(HITS_DDL)
    if not has_table(con, "findings"):
        con.execute("CREATE TABLE findings (id VARCHAR, host VARCHAR, \"check\" VARCHAR, title VARCHAR, "
                    "severity VARCHAR, confidence VARCHAR, category VARCHAR, key VARCHAR, count BIGINT, "
                    "first_seen VARCHAR, last_seen VARCHAR, cves VARCHAR)")
    hosts = hosts_table(doc)  # noqa: F841  (referenced by DuckDB below)
    con.execute("CREATE TABLE hosts AS SELECT * FROM hosts")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    # files outside the case's store cannot be read (read_text('/etc/passwd'), glob('/*'), ...)
    con.execute("SET allowed_directories = ?", [[str(store.resolve()) + "/"]])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def run_query(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise UsageError(f"SQL error: {str(exc).splitlines()[0]}") from exc
    if len(statements) != 1:
        raise UsageError("give exactly one SQL statement")
    if statements[0].type not in ALLOWED:
        kind = statements[0].type.name
        raise UsageError(f"only SELECT queries are allowed (the case is read-only), not {kind}")
    try:
        return con.execute(sql)
    except duckdb.Error as exc:
        raise UsageError(f"SQL error: {str(exc).splitlines()[0]}") from exc


def batches(cursor: duckdb.DuckDBPyConnection) -> Iterator[list[tuple[Any, ...]]]:
    while batch := cursor.fetchmany(FETCH_ROWS):
        yield batch


def write_csv(cursor: duckdb.DuckDBPyConnection, out: BinaryIO) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    n = 0
    try:
        writer = csv.writer(text)
        writer.writerow([d[0] for d in cursor.description])
        for batch in batches(cursor):
            writer.writerows([spreadsheet_cell(v) for v in row] for row in batch)  # no formula runs
            n += len(batch)
        text.flush()
    finally:
        text.detach()
    return n


def write_json(cursor: duckdb.DuckDBPyConnection, out: BinaryIO) -> int:
    """A JSON array of objects, written row by row."""
    names = [d[0] for d in cursor.description]
    n = 0
    out.write(b"[")
    for batch in batches(cursor):
        for row in batch:
            record = orjson.dumps(dict(zip(names, row, strict=True)), default=str)
            out.write((b",\n" if n else b"\n") + record)
            n += 1
    out.write(b"\n]\n" if n else b"]\n")
    return n
