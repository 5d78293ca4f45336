"""Detection-case rows written back as the raw text-log lines the parsers read: IIS W3C, HttpProxy,
ECP Server, OABGenerator and cmdlet logs. Used to test the checks' triage prefilters on real line
shapes and to scan each case's logs with ``--index triage`` and ``--index full``.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TEXT_SOURCES = ("iis", "httpproxy", "ecp_server", "oab_generator", "rps_cmdlet", "exchange_log")
DEFAULT_TS = datetime(2021, 3, 3, 1, 0, 0, tzinfo=UTC)

IIS_FIELDS = ["date", "time", "s-ip", "cs-method", "cs-uri-stem", "cs-uri-query", "s-port", "cs-username",
              "c-ip", "cs(User-Agent)", "cs(Referer)", "sc-status", "sc-substatus", "sc-win32-status",
              "time-taken"]
HTTPPROXY_FIELDS = ["DateTime", "RequestId", "MajorVersion", "MinorVersion", "BuildVersion", "RevisionVersion",
                    "ClientRequestId", "Protocol", "UrlHost", "UrlStem", "ProtocolAction", "AuthenticationType",
                    "IsAuthenticated", "AuthenticatedUser", "Organization", "AnchorMailbox", "UserAgent",
                    "ClientIpAddress", "ServerHostName", "HttpStatus", "BackEndStatus", "ErrorCode", "Method",
                    "ProxyAction", "TargetServer", "BackEndCookie", "UrlQuery"]
LOG_TYPES = {"ecp_server": "ECP Server Log", "oab_generator": "OABGenerator Log", "rps_cmdlet": "Rps Cmdlet Log",
             "exchange_log": "Other Log", "httpproxy": "HttpProxy Logs"}


def _ts(row: dict[str, Any]) -> datetime:
    value = row.get("ts")
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value if isinstance(value, datetime) else DEFAULT_TS


def _fields(row: dict[str, Any]) -> dict[str, str]:
    value = row.get("fields") or {}
    return json.loads(value) if isinstance(value, str) else {k: str(v) for k, v in value.items()}


def _iis_value(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace(" ", "+") or "-"


def iis_lines(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(header lines, one data line per row); extra raw fields (cs(Cookie)) become columns."""
    extra = sorted({k for r in rows for k in _fields(r) if k not in IIS_FIELDS})
    names = IIS_FIELDS + extra
    header = ["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0",
              "#Date: 2021-03-03 00:00:00", "#Fields: " + " ".join(names)]
    lines = []
    for row in rows:
        ts, raw = _ts(row), _fields(row)
        base = {"date": ts.strftime("%Y-%m-%d"), "time": ts.strftime("%H:%M:%S"), "s-ip": row.get("server_ip"),
                "cs-method": row.get("method"), "cs-uri-stem": row.get("uri"), "cs-uri-query": row.get("uri_query"),
                "s-port": 443, "cs-username": row.get("user"), "c-ip": row.get("client_ip"),
                "cs(User-Agent)": row.get("user_agent"), "cs(Referer)": None, "sc-status": row.get("status"),
                "sc-substatus": 0, "sc-win32-status": 0, "time-taken": 5}
        base.update(raw)
        lines.append(" ".join(_iis_value(base.get(n)) for n in names))
    return header, lines


def _csv_line(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(["" if v is None else str(v) for v in values])
    return out.getvalue()


def exchange_lines(source: str, rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """An Exchange ``#Fields`` log of ``source`` (HttpProxy columns, or DateTime + the raw fields)."""
    if source == "httpproxy":
        extra = sorted({k for r in rows for k in _fields(r) if k not in HTTPPROXY_FIELDS})
        names = HTTPPROXY_FIELDS + extra
    else:
        names = ["DateTime", "EventData", "Message"]
        names += sorted({k for r in rows for k in _fields(r) if k not in names})
    header = ["#Software: Microsoft Exchange Server", "#Version: 15.01.2176.002",
              f"#Log-type: {LOG_TYPES[source]}", "#Date: 2021-03-03T00:00:00.000Z", "#Fields: " + ",".join(names)]
    lines = []
    for row in rows:
        ts = _ts(row).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        if source == "httpproxy":
            base: dict[str, Any] = {
                "DateTime": ts, "MajorVersion": 15, "MinorVersion": 1, "BuildVersion": 2176, "RevisionVersion": 2,
                "Protocol": row.get("protocol"), "UrlStem": row.get("uri"), "UrlQuery": row.get("uri_query"),
                "AuthenticatedUser": row.get("user"), "AnchorMailbox": row.get("anchor_mailbox"),
                "UserAgent": row.get("user_agent"), "ClientIpAddress": row.get("client_ip"),
                "HttpStatus": row.get("status"), "Method": row.get("method"),
                "TargetServer": row.get("target_server"), "BackEndCookie": row.get("backend_cookie")}
        else:
            cmd = f"S:CMD={row['cmdlet']}{row.get('parameters') or ''}" if row.get("cmdlet") else None
            base = {"DateTime": ts, "EventData": cmd, "Message": row.get("message")}
        base.update(_fields(row))
        lines.append(_csv_line([base.get(n) for n in names]))
    return header, lines


def case_lines(rows: list[dict[str, Any]]) -> dict[str, tuple[list[str], list[str]]]:
    """Per text-log source of the case rows: (header lines, data lines in row order)."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("source") in TEXT_SOURCES:
            by_source.setdefault(row["source"], []).append(row)
    return {s: iis_lines(r) if s == "iis" else exchange_lines(s, r) for s, r in by_source.items()}


def row_line(row: dict[str, Any]) -> str | None:
    """The raw data line of one case row, or None when it is no text-log row."""
    rendered = case_lines([row])
    return next(iter(rendered.values()))[1][0] if rendered else None


LOG_PATHS = {
    "iis": "C/inetpub/logs/LogFiles/W3SVC1/u_ex210303.log",
    "httpproxy": "C/Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy/Owa/HttpProxy_2021030301-1.LOG",
    "ecp_server": "C/Program Files/Microsoft/Exchange Server/V15/Logging/ECP/Server/ECPServer_2021030301-1.LOG",
    "oab_generator": "C/Program Files/Microsoft/Exchange Server/V15/Logging/OABGeneratorLog/OAB_1.LOG",
    "rps_cmdlet": "C/Program Files/Microsoft/Exchange Server/V15/Logging/CmdletInfra/Powershell/Rps_1.LOG",
    "exchange_log": "C/Program Files/Microsoft/Exchange Server/V15/Logging/Other/Other_1.LOG",
}


def write_case_logs(root: Path, rows: list[dict[str, Any]], padding: int = 0) -> list[Path]:
    """The case's text-log rows as log files under ``root`` (with ``padding`` benign lines before
    and after each row, so triage has lines to skip); returns the files written."""
    written = []
    for source, (header, lines) in case_lines(rows).items():
        path = root / LOG_PATHS[source]
        path.parent.mkdir(parents=True, exist_ok=True)
        filler = _filler(source, padding)
        body = [line for data in lines for line in (*filler, data)] + filler
        path.write_text("\r\n".join(header + body) + "\r\n", encoding="utf-8")
        written.append(path)
    return written


def _filler(source: str, count: int) -> list[str]:
    benign = {"source": source, "method": "GET", "uri": "/owa/", "status": 200, "client_ip": "10.0.0.5",
              "user_agent": "Mozilla/5.0 (Windows NT 10.0)", "message": "OAB generation completed"}
    line = next(iter(case_lines([benign]).values()))[1][0]
    return [line] * count
