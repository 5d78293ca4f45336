"""Web-shell tunnel checks: their prefilters select every line the checks could hit (the rows of their
detection cases written as real IIS and HttpProxy lines), compile for Hyperscan, and the traffic
check's page pattern leaves out exactly Exchange's busy endpoints."""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from exhunt.demo.formats import HTTPPROXY_FIELDS, IIS_FIELDS
from exhunt.detections.base import Check
from exhunt.detections.checks.tunnels import BUSY_PAGES, DYNAMIC_EXTENSIONS, TunnelRequests, TunnelTraffic
from exhunt.detections.runner import prepare
from exhunt.findings.triage import group_hits
from tests.detections.test_cases import _expand, store_of

CASES = Path(__file__).parent / "cases"
TS = datetime(2021, 3, 3, 10, 0, tzinfo=UTC)


def _ts(row: dict[str, Any]) -> datetime:
    value = row.get("ts", TS)
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value


def iis_line(row: dict[str, Any]) -> bytes:
    ts = _ts(row)
    values = {
        "date": f"{ts:%Y-%m-%d}", "time": f"{ts:%H:%M:%S}", "s-ip": "10.0.0.5", "cs-method": row.get("method"),
        "cs-uri-stem": row.get("uri"), "cs-uri-query": (row.get("uri_query") or "").lstrip("?"), "s-port": "443",
        "c-ip": row.get("client_ip"), "cs(User-Agent)": (row.get("user_agent") or "").replace(" ", "+"),
        "sc-status": str(row.get("status", 200)), "sc-substatus": "0", "sc-win32-status": "0", "time-taken": "15",
    }
    return " ".join(values.get(f) or "-" for f in IIS_FIELDS).encode()


def httpproxy_line(row: dict[str, Any]) -> bytes:
    query = row.get("uri_query") or ""
    values = {
        "DateTime": _ts(row).strftime("%Y-%m-%dT%H:%M:%S.000Z"), "Protocol": "Owa", "UrlHost": "mail.corp.example",
        "UrlStem": row.get("uri"), "UrlQuery": query and "?" + query.lstrip("?"), "UserAgent": row.get("user_agent"),
        "ClientIpAddress": row.get("client_ip"), "HttpStatus": str(row.get("status", 200)),
        "Method": row.get("method"), "ProxyAction": "Proxy",
    }
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([values.get(f) or "" for f in HTTPPROXY_FIELDS])
    return out.getvalue().encode()


def selects(check: type[Check], line: bytes) -> bool:
    assert check.prefilter
    return any(re.search(p.encode(), line, re.IGNORECASE) for p in check.prefilter)


def summary(check: Check, events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    con = store_of({"events": events})
    prepare(con)
    return sorted((f.key, f.confidence, f.count) for f in group_hits(check, check.run(con)))


def case_rows(name: str) -> list[list[dict[str, Any]]]:
    document = yaml.safe_load((CASES / name).read_text(encoding="utf-8"))
    return [_expand(case["rows"]["events"]) for case in document["cases"]]


@pytest.mark.parametrize("render", [iis_line, httpproxy_line])
@pytest.mark.parametrize(("check", "cases"), [(TunnelRequests, "webshell_tunnel_requests.yml"),
                                               (TunnelTraffic, "webshell_tunnel_traffic.yml")])
def test_prefilter_keeps_every_line_the_check_hits(check: type[Check], cases: str, render: Any) -> None:
    """Parsing only the selected lines (what triage does) gives the same findings as parsing all."""
    found = 0
    for events in case_rows(cases):
        kept = [row for row in events if selects(check, render(row))]
        full = summary(check(), events)
        assert summary(check(), kept) == full
        found += len(full)
    assert found > 0


def test_traffic_prefilter_leaves_out_busy_endpoints_gets_and_static_files() -> None:
    quiet = case_rows("webshell_tunnel_traffic.yml")[-1]
    for row in quiet:
        dynamic_post = row["method"] == "POST" and re.search(r"\.(aspx|ashx|asmx|php)$", row["uri"], re.I)
        expected = bool(dynamic_post) and row["uri"].lower() not in BUSY_PAGES
        assert selects(TunnelTraffic, iis_line(row)) == expected, row["uri"]
        assert selects(TunnelTraffic, httpproxy_line(row)) == expected, row["uri"]


def test_traffic_page_pattern_is_exactly_dynamic_and_not_busy() -> None:
    """Stems near the busy pages (one character off, longer, shorter, other case): selected exactly
    when the check could count them."""
    rng = random.Random(16)
    alphabet = "abcdefghijklmnopqrstuvwxyzEWSXO/._-0123456789"
    bases = [p.rsplit(".", 1)[0] for p in BUSY_PAGES] + [""]
    for _ in range(3000):
        chars = list(rng.choice(bases) + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3))))
        if chars and rng.random() < 0.5:
            del chars[rng.randrange(len(chars))]
        stem = "/" + "".join(chars).lstrip("/") + "." + rng.choice(DYNAMIC_EXTENSIONS)
        stem = stem.upper() if rng.random() < 0.3 else stem
        row = {"method": "POST", "uri": stem, "client_ip": "203.0.113.9"}
        expected = stem.lower() not in BUSY_PAGES
        assert selects(TunnelTraffic, iis_line(row)) == expected, stem
        assert selects(TunnelTraffic, httpproxy_line(row)) == expected, stem


@pytest.mark.parametrize("check", [TunnelRequests, TunnelTraffic])
def test_prefilters_compile_for_hyperscan(check: type[Check]) -> None:
    assert check.prefilter
    for pattern in check.prefilter:
        assert not re.search(r"\(\?[=!<]|\\[1-9]", pattern), "no lookaround, no backreference"
    hyperscan = pytest.importorskip("hyperscan", reason="hyperscan is not installed")
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(expressions=[p.encode() for p in check.prefilter], ids=list(range(len(check.prefilter))),
                     flags=[hyperscan.HS_FLAG_CASELESS] * len(check.prefilter))


def test_scan_of_a_real_format_iis_log_reports_both(tmp_path: Path) -> None:
    """End to end: an IIS W3C log (the demo's real header and field order) with a reGeorg session."""
    from datetime import timedelta

    from exhunt.api import ScanOptions, scan
    from exhunt.demo.formats import iis_log

    page, client = "/aspnet_client/system_web/tunnel.aspx", "203.0.113.7"
    rows = [{"date": f"{TS:%Y-%m-%d}", "time": f"{TS:%H:%M:%S}", "s-ip": "10.0.0.5", "cs-method": "POST",
             "cs-uri-stem": page, "cs-uri-query": "cmd=connect&target=10.0.0.20&port=3389", "s-port": "443",
             "c-ip": client, "cs(User-Agent)": "python-urllib3/1.26.5", "sc-status": "200", "sc-substatus": "0",
             "sc-win32-status": "0", "time-taken": "3"}]
    for n in range(1, 301):
        at = TS + timedelta(seconds=n * 0.5)
        rows.append({**rows[0], "time": f"{at:%H:%M:%S}", "cs-uri-query": "cmd=read" if n % 2 else "cmd=forward"})
    logs = tmp_path / "evidence" / "inetpub" / "logs" / "LogFiles" / "W3SVC1"
    logs.mkdir(parents=True)
    (logs / "u_ex210303.log").write_bytes(iis_log(TS, rows))
    document = scan([tmp_path / "evidence"], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True)).document
    found = {(f.check, f.key, f.count) for f in document.findings if f.check.startswith("webshell.tunnel")}
    assert found == {("webshell.tunnel_requests", f"{client} {page}", 301),
                     ("webshell.tunnel_traffic", f"{client} {page}", 301)}


def test_page_first_pattern_backwards_and_forwards_select_the_same_lines() -> None:
    """exhunt scans the HttpProxy form read back from the extension; the benchmark gives ripgrep the
    forward form: on logged paths (each starts with '/') they select the same lines."""
    from exhunt.detections.checks.tunnels import page_first_pattern

    back, forward = (re.compile(page_first_pattern(b).encode(), re.IGNORECASE) for b in (True, False))
    rng = random.Random(5)
    bases = [p.rsplit(".", 1)[0] for p in BUSY_PAGES] + ["/a", "/owa/x"]
    for _ in range(2000):
        stem = rng.choice(bases) + rng.choice(["", "1", "x/y", ""]) + "." + rng.choice([*DYNAMIC_EXTENSIONS, "js"])
        line = httpproxy_line({"method": rng.choice(["POST", "GET"]), "uri": stem, "client_ip": "203.0.113.9"})
        assert bool(back.search(line)) == bool(forward.search(line)), line
