"""Timesketch JSONL: one JSON object per line with ``message``, ``datetime`` (ISO 8601) and
``timestamp_desc`` (the importer's required fields), ``timestamp`` in microseconds, and our fields.

Rows without a time cannot be placed on a timeline and are left out (they are in the CSV). Cited
rows carry ``tag`` values (``exhunt``, the severity and the check ids) so a sketch can filter them.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import orjson

from exhunt.reports.case import Case
from exhunt.reports.csv_timeline import records

REQUIRED = ("message", "datetime", "timestamp_desc")


def render(case: Case, out: BinaryIO) -> None:
    for record in records(case):
        ts = record.pop("_ts")
        if ts is None:
            continue
        event: dict[str, Any] = {k: v for k, v in record.items() if v not in (None, "")}
        event["message"] = record["message"] or f"{record['source']} {record['path']}"
        event["timestamp"] = int(ts.timestamp() * 1_000_000)
        event["data_type"] = "exhunt:evidence" if record["finding_ids"] else "exhunt:event"
        if record["finding_ids"]:
            checks = sorted({i.rsplit(":", 1)[0] for i in record["finding_ids"].split()})
            event["tag"] = ["exhunt", *([record["severity"]] if record["severity"] else []), *checks]
        out.write(orjson.dumps(event) + b"\n")
