"""The detection cases again, through real log files in every text encoding Windows writes.

Every case whose rows are IIS or HttpProxy requests is written as the log those rows come from (one
file per host and source), saved as UTF-8, UTF-8 with BOM, UTF-16LE/BE with BOM and UTF-16LE without,
parsed by the real per-file task and checked against the case's own expectations: the parsers read
every form to the same rows, so the check finds the same.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exhunt.detections.runner import prepare
from exhunt.findings.triage import group_hits
from tests.artifacts.test_encoding import ENCODINGS, IDS, encode
from tests.detections.test_cases import BY_ID, DEFAULTS, _expand, _value, assert_expected, load_cases
from tests.helpers import parse_paths

DEFAULT_TS = datetime(2021, 3, 3, 2, 0, 0, tzinfo=UTC)
IIS_FIELDS = {"date": None, "time": None, "s-ip": "server_ip", "cs-method": "method", "cs-uri-stem": "uri",
              "cs-uri-query": "uri_query", "s-port": None, "cs-username": "user", "c-ip": "client_ip",
              "cs(User-Agent)": "user_agent", "sc-status": "status"}
PROXY_FIELDS = {"DateTime": None, "Protocol": "protocol", "UrlStem": "uri", "UrlQuery": "uri_query",
                "AnchorMailbox": "anchor_mailbox", "BackEndCookie": "backend_cookie", "UserAgent": "user_agent",
                "ClientIpAddress": "client_ip", "AuthenticatedUser": "user", "HttpStatus": "status", "Method": "method"}


def web_cases() -> list[Any]:
    params = []
    for param in load_cases():
        rows = param.values[0].get("rows") or {}
        events = rows.get("events") or []
        if events and not rows.get("files") and {r.get("source") for r in events} <= {"iis", "httpproxy"}:
            params.append(param)
    return params


def _iis_value(value: Any) -> str:
    text = "-" if value in (None, "") else str(value)
    return text.replace(" ", "+")


def iis_log(rows: list[dict[str, Any]]) -> str:
    extra = sorted({k for r in rows for k in (r.get("fields") or {}) if k not in IIS_FIELDS})
    names = list(IIS_FIELDS) + extra
    lines = ["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0",
             "#Date: 2021-03-03 00:00:00", "#Fields: " + " ".join(names)]
    for row in rows:
        ts = _value("ts", row["ts"]) if row.get("ts") else DEFAULT_TS  # IIS writes whole seconds
        values = {name: row.get(column) for name, column in IIS_FIELDS.items() if column}
        values.update({"date": f"{ts:%Y-%m-%d}", "time": f"{ts:%H:%M:%S}", "s-port": 443})
        values.update(row.get("fields") or {})
        lines.append(" ".join(_iis_value(values.get(n)) for n in names))
    return "\r\n".join(lines) + "\r\n"


def proxy_log(rows: list[dict[str, Any]]) -> str:
    extra = sorted({k for r in rows for k in (r.get("fields") or {}) if k not in PROXY_FIELDS})
    names = list(PROXY_FIELDS) + extra
    out = io.StringIO()
    out.write("#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: HttpProxy Logs\r\n"
              "#Date: 2021-03-03T00:00:00.000Z\r\n#Fields: " + ",".join(names) + "\r\n")
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        ts = _value("ts", row["ts"]) if row.get("ts") else DEFAULT_TS
        values = {name: row.get(column) for name, column in PROXY_FIELDS.items() if column}
        values["DateTime"] = ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        values.update(row.get("fields") or {})
        writer.writerow(["" if values.get(n) is None else str(values[n]) for n in names])
    return out.getvalue()


@pytest.mark.parametrize("form", ENCODINGS, ids=IDS)
@pytest.mark.parametrize("case", web_cases())
def test_case_through_encoded_logs(tmp_path: Path, case: dict[str, Any], form: tuple[str, bytes, str]) -> None:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    events = _expand(case["rows"]["events"])
    for row in events:
        groups.setdefault((row.get("host", DEFAULTS["host"]), row["source"]), []).append(row)
    evidence = tmp_path / "evidence"
    con = None
    for number, ((host, source), rows) in enumerate(groups.items()):
        if source == "iis":
            rel, text = f"{host}/W3SVC1/u_ex21030{number}.log", iis_log(rows)
        else:
            rel, text = f"{host}/HttpProxy/Ecp/HttpProxy_2021030302-{number}.LOG", proxy_log(rows)
        (evidence / rel).parent.mkdir(parents=True, exist_ok=True)
        (evidence / rel).write_bytes(encode(text, form))
        con = parse_paths(tmp_path, evidence, [rel], host)
    assert con is not None
    assert con.execute("SELECT count(*) FROM events").fetchone() == (len(events),)
    check = BY_ID[case["check"]]()
    prepare(con)
    assert_expected(case["expect"], group_hits(check, check.run(con)))
