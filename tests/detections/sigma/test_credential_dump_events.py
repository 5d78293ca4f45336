"""LSASS dumping as responders meet it after a HAFNIUM-style intrusion, in the events that record it
(Sysmon 1, Security 4688, PowerShell 4104): each is a finding of the right rule and severity whose
evidence row is the event (file, record id, UTC time), and each survives the EVTX triage (its record's
JSON and its chunk's UTF-16 text hold a literal of the default scan) so ``--index triage`` finds what
``--index full`` finds. Benign dumps of a worker process stay quiet."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from exhunt.api import ScanOptions, event_filter, scan
from exhunt.artifacts import evtx_chunks
from tests.artifacts.event_shapes import SYSMON, evtx_json

T0 = datetime(2021, 3, 3, 2, 0, 0, tzinfo=UTC)
SECURITY = ("Microsoft-Windows-Security-Auditing", "Security")
POWERSHELL = ("Microsoft-Windows-PowerShell", "Microsoft-Windows-PowerShell/Operational")
RUNDLL32 = "C:\\Windows\\System32\\rundll32.exe"
CMD = "C:\\Windows\\System32\\cmd.exe"


def sysmon1(command: str, image: str = RUNDLL32, **more: str) -> dict[str, Any]:
    return {"provider": SYSMON[0], "channel": SYSMON[1], "id": 1,
            "data": {"Image": image, "CommandLine": command, "ParentImage": CMD, "ParentCommandLine": "cmd.exe",
                     "User": "NT AUTHORITY\\SYSTEM", **more}}


def security4688(command: str, image: str = RUNDLL32) -> dict[str, Any]:
    return {"provider": SECURITY[0], "channel": SECURITY[1], "id": 4688,
            "data": {"SubjectUserSid": "S-1-5-18", "SubjectUserName": "EXCH01$", "NewProcessName": image,
                     "ParentProcessName": CMD, "CommandLine": command}}


def script_block(text: str) -> dict[str, Any]:
    return {"provider": POWERSHELL[0], "channel": POWERSHELL[1], "id": 4104,
            "data": {"MessageNumber": "1", "MessageTotal": "1", "ScriptBlockText": text, "ScriptBlockId": "x",
                     "Path": ""}}


PROCDUMP = "C:\\ProgramData\\procdump64.exe"
RENAMED = "C:\\ProgramData\\dump64.exe"
# (event, the rule that must report it and its severity; None: nothing may)
CASES: list[tuple[dict[str, Any], tuple[str, str] | None]] = [
    (sysmon1(r"rundll32 C:\windows\System32\comsvcs.dll, MiniDump 624 C:\temp\l.dmp full"),
     ("exhunt_lsass_minidump_comsvcs", "critical")),
    (sysmon1(r'"C:\Windows\System32\rundll32.exe" "C:\Windows\System32\comsvcs.dll",#24 624 "C:\temp\l.dmp" full'),
     ("exhunt_lsass_minidump_comsvcs", "critical")),
    (sysmon1(r"rundll32.exe comsvcs.dll,#+0024 624 l.dmp full"), ("exhunt_lsass_minidump_comsvcs", "critical")),
    (sysmon1(r"RUNDLL32.EXE C:\WINDOWS\SYSTEM32\COMSVCS.DLL,   #0024   624   l.dmp   FULL"),
     ("exhunt_lsass_minidump_comsvcs", "critical")),
    (security4688(r"rundll32.exe comsvcs.dll,#65560 624 C:\temp\l.dmp full"),
     ("exhunt_lsass_minidump_comsvcs", "critical")),
    (script_block(r"rundll32.exe C:\Windows\System32\comsvcs.dll, MiniDump (Get-Process lsass).id C:\temp\l.dmp full"),
     ("exhunt_lsass_dump_powershell", "critical")),
    (script_block("Out-Minidump -Process (Get-Process lsass) -DumpFilePath C:\\temp"),
     ("exhunt_lsass_dump_powershell", "critical")),
    (sysmon1(r"procdump64.exe -accepteula -ma lsass", image=PROCDUMP), ("exhunt_lsass_dump_tool", "critical")),
    (security4688(r'procdump64.exe -accepteula -ma "lsass" C:\temp\l.dmp', image=PROCDUMP),
     ("exhunt_lsass_dump_tool", "critical")),
    (sysmon1(r"dump64.exe -accepteula -ma 624 C:\ProgramData\l.dmp", image=RENAMED, OriginalFileName="procdump"),
     ("exhunt_renamed_procdump", "high")),
    (security4688(r"dump64.exe -accepteula -ma 624 C:\ProgramData\l.dmp", image=RENAMED),
     ("exhunt_renamed_procdump", "high")),
    (sysmon1(r"procdump64.exe -accepteula -ma 4512 C:\dumps\w3wp.dmp", image=PROCDUMP,
             OriginalFileName="procdump"), None),
    (sysmon1(r"procdump64.exe -ma w3wp.exe C:\dumps", image=PROCDUMP), None),
]


def _events() -> list[dict[str, Any]]:
    """The cases' events, a minute apart; Sysmon's own UtcTime (the export's time lags it) is the time."""
    events = []
    for n, (event, _) in enumerate(CASES, 1):
        ts = T0 + timedelta(minutes=n)
        data = {**event["data"], "UtcTime": ts.strftime("%Y-%m-%d %H:%M:%S.000")} if event["id"] == 1 and \
            event["provider"] == SYSMON[0] else event["data"]
        events.append({**event, "data": data, "record": n, "ts": ts})
    return events


@pytest.fixture
def default_literals() -> Iterator[tuple[str, ...]]:
    literals = event_filter(ScanOptions()).literals
    assert literals is not None
    evtx_chunks.configure(literals)
    yield literals
    evtx_chunks.configure(None)


def test_every_dump_event_is_kept_by_the_evtx_triage(default_literals: tuple[str, ...]) -> None:
    for event in _events():
        record = orjson.dumps({"Event": evtx_json(event)["Event"]}).decode()
        values = "\x00".join(str(v) for v in event["data"].values()).encode("utf-16-le")
        expected = CASES[event["record"] - 1][1] is not None
        if expected:
            assert evtx_chunks.record_matches(record), event["data"]
            assert evtx_chunks.chunk_matches(values), event["data"]


def test_each_dump_is_one_finding_with_its_event_as_evidence(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    (root / "export").mkdir(parents=True)
    events = _events()
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
        want = CASES[event["record"] - 1][1]
        got = found.get(event["record"], set())
        if want is None:
            assert got == set(), event["data"]
            continue
        assert got == {("sigma:" + want[0], want[1])}, event["data"]
        path, ts = rows[event["record"]]
        assert path == "export/events.json" and ts == event["ts"].strftime("%Y-%m-%dT%H:%M:%SZ"), (path, ts)
    assert document.hosts[0].verdict == "compromised"
