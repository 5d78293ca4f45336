"""LSASS dumping as responders meet it after a HAFNIUM-style intrusion, in the events that record it
(Sysmon 1, Security 4688, PowerShell 4104): each is a finding of the right rule and severity whose
evidence row is the event (file, record id, UTC time), and each survives the EVTX triage (its record's
JSON and its chunk's UTF-16 text hold a literal of the default scan) so ``--index triage`` finds what
``--index full`` finds. Benign dumps of a worker process stay quiet."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from exhunt.artifacts import evtx_chunks
from tests.artifacts.event_shapes import evtx_json
from tests.detections.sigma.event_cases import CMD, SECURITY, Case, each_is_its_finding, events_of, script_block
from tests.detections.sigma.event_cases import sysmon1 as shared_sysmon1

T0 = datetime(2021, 3, 3, 2, 0, 0, tzinfo=UTC)
RUNDLL32 = "C:\\Windows\\System32\\rundll32.exe"


def sysmon1(command: str, image: str = RUNDLL32, **more: str) -> dict[str, Any]:
    return shared_sysmon1(command, image, **more)


def security4688(command: str, image: str = RUNDLL32) -> dict[str, Any]:
    return {"provider": SECURITY[0], "channel": SECURITY[1], "id": 4688,
            "data": {"SubjectUserSid": "S-1-5-18", "SubjectUserName": "EXCH01$", "NewProcessName": image,
                     "ParentProcessName": CMD, "CommandLine": command}}


PROCDUMP = "C:\\ProgramData\\procdump64.exe"
RENAMED = "C:\\ProgramData\\dump64.exe"
# (event, the rule that must report it and its severity; None: nothing may)
CASES: list[Case] = [
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
    return events_of(CASES, T0)


def test_every_dump_event_is_kept_by_the_evtx_triage(default_literals: tuple[str, ...]) -> None:
    for event in _events():
        record = orjson.dumps({"Event": evtx_json(event)["Event"]}).decode()
        values = "\x00".join(str(v) for v in event["data"].values()).encode("utf-16-le")
        expected = CASES[event["record"] - 1][1] is not None
        if expected:
            assert evtx_chunks.record_matches(record), event["data"]
            assert evtx_chunks.chunk_matches(values), event["data"]


def test_each_dump_is_one_finding_with_its_event_as_evidence(tmp_path: Path) -> None:
    document = each_is_its_finding(tmp_path, CASES, _events())
    assert document.hosts[0].verdict == "compromised"
