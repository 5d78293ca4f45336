"""Prototype for issue 19 item 3: EVTX records mapped to the store's columns in one DuckDB step
instead of per record in Python, measured against exhunt's mapping on the shared EVTX set.

Both sides start from the ``evtx`` package's JSON text of every record (one process, its parse
timed apart) and end with an Arrow table of the ``events`` columns:

* python: what exhunt does (``orjson.loads``, ``winevent.evtx_event_values``, the store's Arrow
  columns from row tuples);
* duckdb: the JSON strings as one Arrow array, one query: a single multi-path ``json_extract``
  per record (each ``->>`` would parse the text again: 3x slower), the columns and the ``fields``
  object (EventData merged with the System values by ``json_merge_patch``) in SQL, one thread.

Prints microseconds per record for each step and, per column, how many rows differ from the
Python mapping (the prototype covers the common shape only: unnamed <Data>, UserData,
Sysmon's UtcTime, the Exchange cmdlet columns and key order are not reproduced). Writes
bench/results/evtx_mapping.md. Usage: .venv/bin/python bench/evtx_mapping.py
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from machine_info import machine, shared_data  # noqa: E402

SHARED = shared_data()

PATHS = ['$.Event.System.Channel', '$.Event.System.Provider."#attributes".Name', '$.Event.System.EventID',
         '$.Event.System.EventRecordID', '$.Event.System.Computer',
         '$.Event.System.TimeCreated."#attributes".SystemTime', '$.Event.System.Level', '$.Event.EventData']
DATA = ["SubjectUserName", "User", "TargetUserName", "Image", "NewProcessName", "CommandLine", "ParentImage",
        "ParentProcessName", "ParentCommandLine", "TargetFilename", "IpAddress", "SourceIp"]
SQL = f"""
WITH x AS (SELECT json_extract(j, {PATHS!r}) AS p FROM src),
v AS (SELECT p[1]->>'$' AS channel, p[2]->>'$' AS provider, TRY_CAST(p[3]->>'$' AS INTEGER) AS event_id,
        TRY_CAST(p[4]->>'$' AS BIGINT) AS record_id, p[5]->>'$' AS computer, p[6]->>'$' AS st,
        TRY_CAST(p[7]->>'$' AS INTEGER) AS level, p[8] AS d,
        json_extract_string(p[8], {["$." + k for k in DATA]!r}) AS q FROM x)
SELECT CASE WHEN (event_id = 1 AND (lower(provider) = 'microsoft-windows-sysmon'
                                    OR lower(channel) = 'microsoft-windows-sysmon/operational'))
              OR (event_id = 4688 AND (lower(channel) = 'security'
                                       OR lower(provider) = 'microsoft-windows-security-auditing'))
            THEN 'process' ELSE 'event' END AS kind,
  channel AS log_type, channel, provider, event_id, record_id, computer, TRY_CAST(st AS TIMESTAMPTZ) AS ts,
  coalesce(nullif(nullif(q[1], ''), '-'), nullif(nullif(q[2], ''), '-'), nullif(nullif(q[3], ''), '-'),
           q[1], q[2], q[3]) AS "user",
  coalesce(nullif(nullif(q[4], ''), '-'), nullif(nullif(q[5], ''), '-'), q[4], q[5]) AS image,
  q[6] AS command_line,
  coalesce(nullif(nullif(q[7], ''), '-'), nullif(nullif(q[8], ''), '-'), q[7], q[8]) AS parent_image,
  q[9] AS parent_command_line, q[10] AS target_filename,
  coalesce(nullif(nullif(q[11], ''), '-'), nullif(nullif(q[12], ''), '-'), q[11], q[12]) AS client_ip,
  json_merge_patch(coalesce(d, '{{}}'), json_object('EventID', event_id, 'Channel', channel,
    'Provider_Name', provider, 'Computer', computer, 'EventRecordID', record_id, 'SystemTime', st,
    'Level', level))::VARCHAR AS fields
FROM v
"""
COMPARED = ("kind", "channel", "provider", "event_id", "record_id", "computer", "ts", "user", "image",
            "command_line", "parent_image", "parent_command_line", "target_filename", "client_ip", "fields")


def record_texts(files: list[bytes]) -> list[str]:
    import evtx

    texts: list[str] = []
    for data in files:
        records = evtx.PyEvtxParser(io.BytesIO(data)).records_json()
        while True:
            try:
                texts.append(next(records)["data"])
            except StopIteration:
                break
            except Exception:  # noqa: BLE001 - a corrupt chunk: the next one, as exhunt does
                continue
    return texts


def python_mapping(texts: list[str]) -> tuple[object, dict[str, float]]:
    import orjson

    from exhunt.artifacts.evtx import COLUMNS
    from exhunt.artifacts.winevent import evtx_event_values
    from exhunt.events.store import TableWriter

    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    events = [orjson.loads(text)["Event"] for text in texts]
    steps["orjson.loads"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = [evtx_event_values(event, "@" not in text) for event, text in zip(events, texts, strict=True)]
    steps["evtx_event_values"] = time.perf_counter() - t0
    writer = TableWriter(ROOT / "bench-out" / "mapping", "events", "h", "p")  # nothing written: only buffered
    t0 = time.perf_counter()
    for row in rows:
        writer.add_values(COLUMNS, (*row, "h", "p", "evtx"))
    table = writer._values_table()  # noqa: SLF001 - the Arrow step the store does per batch
    steps["row tuples -> Arrow columns"] = time.perf_counter() - t0
    return table, steps


def duckdb_mapping(texts: list[str]) -> tuple[object, dict[str, float]]:
    import duckdb
    import pyarrow as pa

    steps: dict[str, float] = {}
    con = duckdb.connect(config={"threads": 1})
    t0 = time.perf_counter()
    src = pa.table({"j": pa.array(texts, pa.string())})  # noqa: F841 - read by the query
    steps["JSON texts -> one Arrow array"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = con.sql(SQL).to_arrow_table()
    steps["one SQL mapping (1 thread)"] = time.perf_counter() - t0
    return table, steps


def main() -> None:
    files = [p.read_bytes() for p in sorted((SHARED / "evtx").rglob("*.evtx"))]
    best: dict[str, float] = {}
    for _ in range(3):  # best of three: a shared machine
        t0 = time.perf_counter()
        texts = record_texts(files)
        steps = {"evtx parse to JSON text (both sides)": time.perf_counter() - t0}
        py_table, py_steps = python_mapping(texts)
        db_table, db_steps = duckdb_mapping(texts)
        for name, seconds in {**steps, **{f"python: {k}": v for k, v in py_steps.items()},
                              **{f"duckdb: {k}": v for k, v in db_steps.items()}}.items():
            best[name] = min(best.get(name, seconds), seconds)
    n = len(texts)
    py_rows, db_rows = py_table.to_pylist(), db_table.to_pylist()  # type: ignore[attr-defined]
    differ = {c: sum(a[c] != b[c] for a, b in zip(py_rows, db_rows, strict=True)) for c in COMPARED}
    py_total = sum(v for k, v in best.items() if k.startswith("python"))
    db_total = sum(v for k, v in best.items() if k.startswith("duckdb"))
    lines = [
        "# EVTX record mapping: Python per record vs one DuckDB step (prototype, issue 19 item 3)",
        "",
        f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f} (shared machine). One process; "
        f"the shared EVTX set once, {len(files)} files, {n:,} records; best of three.",
        "",
        "| step | us per record |",
        "|---|---:|",
        *[f"| {name} | {seconds / n * 1e6:.1f} |" for name, seconds in best.items()],
        f"| python mapping, total | {py_total / n * 1e6:.1f} |",
        f"| duckdb mapping, total | {db_total / n * 1e6:.1f} |",
        "",
        "Rows where the prototype differs from exhunt's mapping, per column: "
        + ", ".join(f"{c} {k:,}" for c, k in differ.items()) + ".",
        "",
        "Reading: DuckDB maps a record in about half the time only with one multi-path extraction per "
        "record; the difference left is small next to the parse itself, and exact equality needs what the "
        "prototype leaves out (fields key order and clashes, unnamed <Data> and UserData, Sysmon UtcTime, "
        "the Exchange cmdlet columns, the time parser's rules). Under --index triage only the records of "
        "matching chunks are mapped (1,248 of 8,246 per copy of the shared set), so the mapping is a small "
        "share of a triage scan (see the Sigma benchmark's profile); exhunt keeps the Python mapping.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "bench" / "results" / "evtx_mapping.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
