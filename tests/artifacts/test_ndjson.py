"""JSON-lines exports of Windows events: both shapes, offsets to UTC, Sysmon UtcTime preferred."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from exhunt.artifacts.ndjson import NdjsonEvents
from tests.helpers import parse_bytes

ECS_SYSMON = {
    "@timestamp": "2021-03-03T04:05:06.999+02:00",
    "host": {"name": "EXCH01"},
    "event": {"code": "1", "provider": "Microsoft-Windows-Sysmon"},
    "winlog": {
        "channel": "Microsoft-Windows-Sysmon/Operational",
        "provider_name": "Microsoft-Windows-Sysmon",
        "event_id": 1,
        "record_id": "4242",
        "computer_name": "exch01.corp.local",
        "event_data": {
            "UtcTime": "2021-03-03 02:05:06.123",
            "Image": "C:\\Windows\\System32\\cmd.exe",
            "CommandLine": "cmd /c whoami",
            "ParentImage": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
            "ParentCommandLine": "c:\\windows\\system32\\inetsrv\\w3wp.exe -ap \"MSExchangeOWAAppPool\"",
            "User": "NT AUTHORITY\\SYSTEM",
        },
    },
}
GENERIC_4624 = {
    "Event": {
        "System": {
            "Provider": {"@Name": "Microsoft-Windows-Security-Auditing"},
            "EventID": {"#text": "4624", "@Qualifiers": ""},
            "TimeCreated": {"@SystemTime": "2021-03-03T10:00:00.1234567-05:00"},
            "EventRecordID": "77",
            "Channel": "Security",
            "Computer": "exch01.corp.local",
        },
        "EventData": {"Data": [
            {"@Name": "SubjectUserName", "#text": "-"},
            {"@Name": "TargetUserName", "#text": "alice"},
            {"@Name": "IpAddress", "#text": "203.0.113.7"},
        ]},
    }
}
GENERIC_EXCHANGE = {
    "Event": {
        "System": {
            "Provider": {"#attributes": {"Name": "MSExchange CmdletLogs"}},
            "EventID": {"#attributes": {"Qualifiers": 16384}, "#text": 1},
            "TimeCreated": {"#attributes": {"SystemTime": "2021-03-03T03:00:00Z"}},
            "EventRecordID": 9,
            "Channel": "MSExchange Management",
            "Computer": "exch01",
        },
        "EventData": {"Data": {"#text": [
            "New-MailboxExportRequest",
            "-Mailbox \"alice\" -FilePath \"\\\\127.0.0.1\\c$\\inetpub\\wwwroot\\aspnet_client\\x.aspx\"",
            "corp.local/Users/attacker",
        ]}},
    }
}


def _ndjson(*docs: dict) -> bytes:
    return b"\n".join(orjson.dumps(d) for d in docs) + b"\n"


def test_ecs_sysmon_prefers_utctime_and_keeps_both(tmp_path: Path) -> None:
    con = parse_bytes(tmp_path, "export/winlogbeat.json", _ndjson(ECS_SYSMON))
    row = con.execute(
        "SELECT source, kind, ts, record_id, event_id, channel, computer, image, parent_image, \"user\","
        " line, json_extract_string(fields, '$.\"@timestamp\"'), json_extract_string(fields, '$.UtcTime')"
        " FROM events"
    ).fetchone()
    assert row[:2] == ("ndjson", "process")
    assert row[2].isoformat() == "2021-03-03T02:05:06.123000+00:00"
    assert row[3:7] == (4242, 1, "Microsoft-Windows-Sysmon/Operational", "exch01.corp.local")
    assert row[7].endswith("cmd.exe") and row[8].endswith("w3wp.exe") and row[9] == "NT AUTHORITY\\SYSTEM"
    assert row[10:] == (1, "2021-03-03T04:05:06.999+02:00", "2021-03-03 02:05:06.123")


@pytest.mark.parametrize(
    ("timestamp", "utc"),
    [("2021-03-03T04:05:06+02:00", "2021-03-03T02:05:06+00:00"),
     ("2021-03-02T23:05:06.5-03:00", "2021-03-03T02:05:06.500000+00:00"),
     ("2021-03-03T02:05:06.123456789Z", "2021-03-03T02:05:06.123456+00:00")],
)
def test_ecs_timestamp_offsets_become_utc(tmp_path: Path, timestamp: str, utc: str) -> None:
    doc = {"@timestamp": timestamp, "winlog": {"channel": "Security", "event_id": "4688",
                                               "event_data": {"NewProcessName": "C:\\x.exe"}}}
    con = parse_bytes(tmp_path, "a.ndjson", _ndjson(doc))
    ts, kind, image = con.execute("SELECT ts, kind, image FROM events").fetchone()
    assert ts.isoformat() == utc and kind == "process" and image == "C:\\x.exe"


def test_generic_shapes_xmltodict_and_evtx_style(tmp_path: Path) -> None:
    con = parse_bytes(tmp_path, "events.jsonl", _ndjson(GENERIC_4624, GENERIC_EXCHANGE))
    rows = con.execute(
        "SELECT ts, event_id, record_id, \"user\", client_ip, cmdlet, parameters, message, fields"
        " FROM events ORDER BY line"
    ).fetchall()
    logon, cmdlet = rows
    assert logon[0].isoformat() == "2021-03-03T15:00:00.123456+00:00"
    assert logon[1:5] == (4624, 77, "alice", "203.0.113.7")
    assert json.loads(logon[8])["SubjectUserName"] == "-"  # raw kept
    assert cmdlet[5] == "New-MailboxExportRequest" and "x.aspx" in cmdlet[6]
    assert cmdlet[7].startswith("New-MailboxExportRequest -Mailbox") and cmdlet[7].endswith("attacker")
    assert json.loads(cmdlet[8])["Data"][0] == "New-MailboxExportRequest"


def test_winlogbeat_params_and_dotted_keys(tmp_path: Path) -> None:
    doc = {"@timestamp": "2021-03-03T03:00:00Z", "winlog.channel": "MSExchange Management",
           "winlog.provider_name": "MSExchange CmdletLogs", "winlog.event_id": 1,
           "winlog.event_data": {"param1": "New-ManagementRoleAssignment",
                                 "param2": "-Role \"Mailbox Import Export\" -User \"attacker\""}}
    con = parse_bytes(tmp_path, "flat.ndjson", _ndjson(doc))
    assert con.execute("SELECT cmdlet, parameters FROM events").fetchone() == (
        "New-ManagementRoleAssignment", "-Role \"Mailbox Import Export\" -User \"attacker\"")


def test_bad_lines_are_warnings_with_line_numbers(tmp_path: Path) -> None:
    data = _ndjson(ECS_SYSMON) + b"{not json\n" + b'{"other": 1}\n' + b"\n" + _ndjson(GENERIC_4624)
    con = parse_bytes(tmp_path, "mixed.ndjson", data)
    assert [r[0] for r in con.execute("SELECT line FROM events ORDER BY line").fetchall()] == [1, 5]
    assert [r[0] for r in con.execute("SELECT line FROM warnings ORDER BY line").fetchall()] == [2, 3]


@pytest.mark.parametrize(
    ("head", "claimed"),
    [(_ndjson(ECS_SYSMON), True), (_ndjson(GENERIC_4624), True),
     (_ndjson({"_source": ECS_SYSMON}), True),
     (b'{"a": 1}\n', False), (b"[1, 2]\n", False), (b"#Fields: x\n", False),
     (b'{"winlog": {"event_data": {"CommandLine": "' + b"x" * 5000, True)],  # first line longer than head
)
def test_claims_by_content(head: bytes, claimed: bool) -> None:
    assert NdjsonEvents.claims("any/name.txt", head[:4096]) is claimed


@pytest.mark.parametrize(
    ("opening", "events"),
    [(b'{"@timestamp": "2021-03-03T00:00:00Z", "message": "agent started"}\n', 1),  # agent status line
     (b'{"index": {"_index": "winlogbeat-2021.03.03"}}\n', 1),  # Elasticsearch bulk format
     (b"", 1)],
)
def test_export_opening_with_other_lines_is_still_read(tmp_path: Path, opening: bytes, events: int) -> None:
    """The first line need not be an event: a status line or bulk action before it, or a bad byte in it."""
    bulk = b'{"index": {}}\n' if opening.startswith(b'{"index"') else b""
    data = opening + _ndjson(ECS_SYSMON) + bulk + _ndjson(GENERIC_4624)
    if not opening:  # an invalid UTF-8 byte inside the first event: replaced and warned, never a veto
        data = data.replace(b"cmd /c whoami", b"cmd /c who\xffami", 1)
    assert NdjsonEvents.claims("x.ndjson", data[:4096])
    con = parse_bytes(tmp_path, "x.ndjson", data)
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == events + 1
    warnings = [m for (m,) in con.execute("SELECT message FROM warnings").fetchall()]
    assert not [m for m in warnings if "bulk" in m or "index" in m], warnings
    if not opening:
        assert any("invalid UTF-8" in m for m in warnings), warnings


def test_flattened_event_data_keys_and_epoch_timestamp(tmp_path: Path) -> None:
    flat = {"@timestamp": 1614744000000, "winlog.channel": "Microsoft-Windows-Sysmon/Operational",
            "winlog.provider_name": "Microsoft-Windows-Sysmon", "winlog.event_id": 1,
            "winlog.event_data.UtcTime": "2021-03-03 01:00:00.456", "winlog.event_data.Image": "C:\\flat.exe",
            "winlog.event_data.CommandLine": "flatcmd"}
    epoch_only = {"@timestamp": 1614744000, "winlog": {"channel": "Security", "event_id": 4624,
                                                       "event_data": {"TargetUserName": "bob"}}}
    con = parse_bytes(tmp_path, "flat.ndjson", _ndjson(flat, epoch_only))
    rows = con.execute("SELECT ts, image, command_line, json_extract(fields, '$.\"@timestamp\"')"
                       " FROM events ORDER BY line").fetchall()
    assert rows[0][0].isoformat() == "2021-03-03T01:00:00.456000+00:00"  # Sysmon UtcTime preferred
    assert rows[0][1:3] == ("C:\\flat.exe", "flatcmd") and rows[0][3] == "1614744000000"  # kept as exported
    assert rows[1][0].isoformat() == "2021-03-03T04:00:00+00:00"  # epoch seconds


@pytest.mark.parametrize(("level", "stored"), [("error", 2), ("information", 4), (3, 3), (None, None)])
def test_ecs_level_reaches_fields(tmp_path: Path, level: object, stored: int | None) -> None:
    doc = {"@timestamp": "2021-03-03T00:00:00Z", "log": {"level": level},
           "winlog": {"channel": "Application", "provider_name": "MSExchange Control Panel", "event_id": 4}}
    con = parse_bytes(tmp_path, "app.ndjson", _ndjson(doc))
    assert con.execute("SELECT json_extract(fields, '$.Level')::INTEGER FROM events").fetchone()[0] == stored


def test_ecs_network_fields_stand_in_for_event_data(tmp_path: Path) -> None:
    doc = {"@timestamp": "2021-03-03T00:00:00Z", "destination": {"ip": "127.0.0.1", "port": 3389},
           "source": {"ip": "127.0.0.1", "port": 50000},
           "process": {"executable": "c:\\windows\\system32\\inetsrv\\w3wp.exe"},
           "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "provider_name": "Microsoft-Windows-Sysmon",
                      "event_id": 3, "event_data": {"UtcTime": "2021-03-03 00:00:00.000"}}}
    con = parse_bytes(tmp_path, "net.ndjson", _ndjson(doc))
    got = con.execute("SELECT json_extract_string(fields, '$.DestinationIp'), json_extract_string(fields, "
                      "'$.DestinationPort'), image FROM events").fetchone()
    assert got == ("127.0.0.1", "3389", "c:\\windows\\system32\\inetsrv\\w3wp.exe")
