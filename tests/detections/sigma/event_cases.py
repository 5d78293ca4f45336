"""Events as Windows logs them, for the data-driven cases of exhunt's post-exploitation rules
(test_credential_dump_events.py, test_persistence_events.py): builders of the events, the cases'
events a minute apart, and the scan that checks each event is one
finding of its rule with the event as evidence."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from exhunt.api import ScanOptions, scan
from exhunt.findings.model import AssessmentDocument
from tests.artifacts.event_shapes import SYSMON, evtx_json

SECURITY = ("Microsoft-Windows-Security-Auditing", "Security")
POWERSHELL = ("Microsoft-Windows-PowerShell", "Microsoft-Windows-PowerShell/Operational")
CMD = "C:\\Windows\\System32\\cmd.exe"
# an event, and the rule and severity that must report it (None: nothing may)
Case = tuple[dict[str, Any], tuple[str, str] | None]


def sysmon1(command: str, image: str, **more: str) -> dict[str, Any]:
    return {"provider": SYSMON[0], "channel": SYSMON[1], "id": 1,
            "data": {"Image": image, "CommandLine": command, "ParentImage": CMD, "ParentCommandLine": "cmd.exe",
                     "User": "NT AUTHORITY\\SYSTEM", **more}}


def script_block(text: str) -> dict[str, Any]:
    return {"provider": POWERSHELL[0], "channel": POWERSHELL[1], "id": 4104,
            "data": {"MessageNumber": "1", "MessageTotal": "1", "ScriptBlockText": text, "ScriptBlockId": "x",
                     "Path": ""}}


def events_of(cases: Sequence[Case], start: datetime) -> list[dict[str, Any]]:
    """The cases' events, a minute apart; Sysmon's own UtcTime (the export's time lags it) is the time."""
    events = []
    for n, (event, _) in enumerate(cases, 1):
        ts = start + timedelta(minutes=n)
        data = {**event["data"], "UtcTime": ts.strftime("%Y-%m-%d %H:%M:%S.000")} if event["id"] == 1 and \
            event["provider"] == SYSMON[0] else event["data"]
        events.append({**event, "data": data, "record": n, "ts": ts})
    return events


def each_is_its_finding(tmp_path: Path, cases: Sequence[Case], events: list[dict[str, Any]]) -> AssessmentDocument:
    """Scan the events as an export; assert each is one finding of its case's rule and severity whose
    evidence row is the event (path, record id, UTC time), and that the others give none."""
    root = tmp_path / "evidence"
    (root / "export").mkdir(parents=True)
    (root / "export" / "events.json").write_bytes(b"".join(orjson.dumps(evtx_json(e)) + b"\n" for e in events))
    document = scan([root], ScanOptions(out=tmp_path / "case", host="EXCH01", jobs=1, quiet=True,
                                        html_report=False)).document
    found: dict[int, set[tuple[str, str]]] = {}
    rows: dict[int, tuple[str, str | None]] = {}
    for finding in document.findings:
        for evidence in finding.evidence:
            assert evidence.record_id is not None
            found.setdefault(evidence.record_id, set()).add((finding.check, finding.severity))
            rows[evidence.record_id] = (evidence.path, evidence.ts)
    for event in events:
        want = cases[event["record"] - 1][1]
        got = found.get(event["record"], set())
        if want is None:
            assert got == set(), event["data"]
            continue
        assert got == {("sigma:" + want[0], want[1])}, event["data"]
        path, ts = rows[event["record"]]
        assert path == "export/events.json" and ts == event["ts"].strftime("%Y-%m-%dT%H:%M:%SZ"), (path, ts)
    return document
