"""Windows event exports in the shapes analysts receive give the findings of the EVTX form.

The reference is the evtx crate's JSON of the same records (what the EVTX reader maps); every shape
is built by ``event_shapes`` from one list of invented events and scanned end to end (parse, store,
ProxyLogon post-exploitation Sigma rules, checks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from exhunt.api import ScanOptions, scan
from tests.artifacts.event_shapes import SHAPES, SYSMON, csv_bytes, events, nxlog, otrf, sentinel, splunk
from tests.helpers import parse_bytes

EXPECTED_RULES = {"sigma:exhunt_exchange_vdir_script", "sigma:exhunt_exchange_worker_spawns_shell",
                  "sigma:exhunt_lsass_minidump_comsvcs", "sigma:exhunt_exchange_webfolder_page_created"}


def _findings(tmp_path: Path, name: str, data: bytes) -> tuple[list[tuple[Any, ...]], Any]:
    root = tmp_path / name
    (root / "export").mkdir(parents=True)
    (root / "export" / ("events.csv" if name.endswith("csv") else "events.json")).write_bytes(data)
    doc = scan([root], ScanOptions(host="EXCH01", jobs=1, quiet=True)).document
    found = sorted((f.check, f.severity, f.count, f.first_seen, f.last_seen,
                    tuple(sorted((k, tuple(v)) for k, v in f.indicators.items())),
                    tuple((e.ts, e.record_id, e.excerpt) for e in f.evidence)) for f in doc.findings)
    return found, doc.hosts[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Any, ...]]]:
    tmp = tmp_path_factory.mktemp("reference")
    sysmon = [e for e in events() if e["provider"] == SYSMON[0]]
    return {"all": _findings(tmp, "evtx-json", SHAPES["evtx-json"](events()))[0],
            "sysmon": _findings(tmp, "evtx-json-sysmon", SHAPES["evtx-json"](sysmon))[0]}


def test_reference_finds_every_step(reference: dict[str, list[tuple[Any, ...]]]) -> None:
    assert {f[0] for f in reference["all"]} == EXPECTED_RULES


@pytest.mark.parametrize("shape", [s for s in SHAPES if s not in ("evtx-json", "nxlog")])
def test_export_shape_gives_the_evtx_findings(tmp_path: Path, shape: str,
                                              reference: dict[str, list[tuple[Any, ...]]]) -> None:
    found, host = _findings(tmp_path, shape, SHAPES[shape](events()))
    with_ids = shape != "sentinel"  # Log Analytics' Event table has no record id column
    assert _without_excerpts(found, with_ids) == _without_excerpts(reference["all"], with_ids)
    assert host.coverage.warnings == 0 and host.coverage.events == len(events())
    assert "event_logs" not in host.coverage.missing


def test_nxlog_local_time_is_a_warning_and_sysmon_utctime_wins(
        tmp_path: Path, reference: dict[str, list[tuple[Any, ...]]]) -> None:
    """NXLog's EventTime is the collector's local time without an offset: Sysmon events keep their
    UtcTime; the Exchange event, with nothing else, has no time and a warning (never a guess)."""
    sysmon = [e for e in events() if e["provider"] == SYSMON[0]]
    found, _ = _findings(tmp_path, "nxlog", SHAPES["nxlog"](sysmon))
    assert _without_excerpts(found) == _without_excerpts(reference["sysmon"])
    con = parse_bytes(tmp_path, "nx/events.json", SHAPES["nxlog"](events()))
    rows = con.execute("SELECT line, ts IS NULL, json_extract_string(fields, '$.EventTime') FROM events "
                       "ORDER BY line").fetchall()
    assert [r[1] for r in rows] == [False, False, False, True]
    assert all(r[2] for r in rows)  # the export's own time is kept in fields
    (warning,) = con.execute("SELECT line, message FROM warnings").fetchall()
    assert warning[0] == 4 and "local time without an offset" in warning[1] and "EventTime" in warning[1]


def test_sysmon_utctime_is_kept_beside_the_export_time(tmp_path: Path) -> None:
    con = parse_bytes(tmp_path, "x/events.json", SHAPES["sentinel"](events()[:1]))
    ts, utc, generated = con.execute("SELECT ts, json_extract_string(fields, '$.UtcTime'), "
                                     "json_extract_string(fields, '$.TimeGenerated') FROM events").fetchone()
    assert ts.isoformat() == "2021-03-03T02:10:05.123000+00:00"
    assert utc == "2021-03-03 02:10:05.123" and generated == "2021-03-03T02:10:07.123000Z"


def test_mixed_shapes_each_line_by_itself_and_bad_lines_are_warnings(tmp_path: Path) -> None:
    one, two, three, four = events()
    data = b"".join([orjson.dumps(otrf(one)), b"\n", b'{"broken": \n', orjson.dumps(sentinel(two)), b"\n",
                     orjson.dumps({"Pid": 4, "Name": "System"}), b"\n", orjson.dumps(splunk(three)), b"\n",
                     orjson.dumps(nxlog(four)), b"\n"])
    con = parse_bytes(tmp_path, "mixed/events.json", data)
    assert [r[0] for r in con.execute("SELECT line FROM events ORDER BY line").fetchall()] == [1, 3, 5, 6]
    warnings = dict(con.execute("SELECT line, message FROM warnings").fetchall())
    assert set(warnings) == {2, 4, 6}
    assert warnings[2].startswith("not JSON") and "keys Pid, Name" in warnings[4]
    assert "local time without an offset" in warnings[6]


SECURITY_EVENT = {  # Sentinel SecurityEvent: flattened columns, no EventData
    "TimeGenerated": "2021-03-03T02:10:05.5Z", "Computer": "EXCH01.corp.example", "EventID": 4688,
    "Channel": "Security", "EventSourceName": "Microsoft-Windows-Security-Auditing", "Type": "SecurityEvent",
    "Activity": "4688 - A new process has been created.", "NewProcessName": "C:\\Windows\\System32\\cmd.exe",
    "CommandLine": "cmd.exe /c whoami", "ParentProcessName": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
    "SubjectUserName": "EXCH01$",
}


def test_sentinel_security_event_flattened_columns(tmp_path: Path) -> None:
    con = parse_bytes(tmp_path, "sentinel/SecurityEvent.json", orjson.dumps(SECURITY_EVENT) + b"\n")
    row = con.execute("SELECT kind, event_id, channel, provider, image, parent_image, command_line, \"user\", ts "
                      "FROM events").fetchone()
    assert row[:8] == ("process", 4688, "Security", "Microsoft-Windows-Security-Auditing",
                       "C:\\Windows\\System32\\cmd.exe", "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
                       "cmd.exe /c whoami", "EXCH01$")
    assert row[8].isoformat() == "2021-03-03T02:10:05.500000+00:00"


def test_event_viewer_csv_local_time_and_description_column(tmp_path: Path) -> None:
    text = ("Level,Date and Time,Source,Event ID,Task Category\r\n"
            'Information,3/3/2021 4:10:05 AM,MSExchange CmdletLogs,1,(1),"Cmdlet succeeded.\r\nSet-X"\r\n'
            "Information,3/3/2021 4:11:05 AM,MSExchange CmdletLogs,1\r\n")
    con = parse_bytes(tmp_path, "ev/app.csv", text.encode("utf-8-sig"))
    rows = con.execute("SELECT line, event_id, provider, ts, message FROM events ORDER BY line").fetchall()
    assert rows == [(2, 1, "MSExchange CmdletLogs", None, "Cmdlet succeeded.\r\nSet-X")]
    warnings = [m for (m,) in con.execute("SELECT message FROM warnings ORDER BY line").fetchall()]
    assert any("Date and Time '3/3/2021 4:10:05 AM'" in m for m in warnings)
    assert any("4 cells, the header has 5" in m for m in warnings)


def test_csv_claim_needs_an_event_id_and_a_time_column(tmp_path: Path) -> None:
    rows = [{"EventID": "1", "Channel": "x"}]
    con = parse_bytes(tmp_path, "a/no_time.csv", csv_bytes(rows))
    assert con.execute("SELECT count(*) FROM events").fetchone() == (0,)
    (artifact, message) = con.execute("SELECT artifact, message FROM warnings").fetchone()
    assert artifact == "unrecognised" and message.startswith("CSV with columns EventID, Channel")


def _without_excerpts(found: list[tuple[Any, ...]], with_ids: bool = True) -> list[tuple[Any, ...]]:
    """Excerpts quote the raw record, which differs by shape; times, ids and everything else must not."""
    return [(*f[:6], tuple((ts, rid if with_ids else None) for ts, rid, _ in f[6])) for f in found]


def test_message_tracking_csv_is_not_an_event_export(tmp_path: Path) -> None:
    """Get-MessageTrackingLog | Export-Csv has EventId and Timestamp columns, but the ids are words."""
    text = ('"Timestamp","ClientIp","EventId","Source","Sender"\r\n'
            '"3/3/2021 2:10:05 AM","10.0.0.5","RECEIVE","SMTP","a@corp.example"\r\n')
    con = parse_bytes(tmp_path, "exports/tracking.csv", text.encode())
    assert con.execute("SELECT artifact FROM files").fetchall() != [("eventcsv",)]
    assert con.execute("SELECT count(*) FROM events").fetchone() == (0,)


@pytest.mark.parametrize(("header", "claimed"), [
    ("Id,Name,Date", False),  # any table's key and a date
    ("Id,Date,LogName", True),
    ("TimeCreated,EventId", True),
    ("EventID,Computer", False),  # no time column
])
def test_csv_header_claims(header: str, claimed: bool) -> None:
    from exhunt.artifacts.eventcsv import EventCsv

    assert EventCsv.claims("x.csv", f"{header}\r\n".encode()) is claimed


def test_convertto_json_dates_of_powershell_51_give_the_instant(tmp_path: Path) -> None:
    """``Get-WinEvent | ConvertTo-Json`` in Windows PowerShell 5.1 writes ``/Date(ms)/``: the event
    was stored with no time and the date called unreadable."""
    one = events()[0]
    doc = otrf(one)
    doc.pop("@timestamp", None)
    for key in ("EventTime", "TimeCreated", "Timestamp", "TimeGenerated", "UtcTime"):
        doc.pop(key, None)
    doc["TimeCreated"] = "/Date(1614744605123)/"
    con = parse_bytes(tmp_path, "ps51/events.json", orjson.dumps(doc) + b"\n")
    ((ts,),) = con.execute("SELECT ts FROM events").fetchall()
    assert ts.isoformat() == "2021-03-03T04:10:05.123000+00:00"
