"""The pivot pass's patterns: each indicator selects the lines that hold it and no line that holds
only a longer value (10.0.0.1 never selects 10.0.0.12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.artifacts.linefilter import LineSelector, compile_patterns
from exhunt.detections.pivot import ORIGINATING, Indicators, ip_pattern, name_pattern
from exhunt.detections.pivot import PATTERN as PATTERNS


def selected(pattern: str, lines: list[str]) -> list[str]:
    data = "".join(f"{line}\r\n" for line in lines).encode()
    spans = LineSelector(compile_patterns([pattern]).blob).spans(data)
    return [data[s:e].decode().rstrip("\r\n") for s, e in spans]


@pytest.mark.parametrize(("value", "hit", "miss"), [
    ("10.0.0.1", ["2021-03-03 01:00:00 10.0.0.1 GET /", "x,10.0.0.1,y", "10.0.0.1", "c=10.0.0.1:443 x",
                  "a 10.0.0.1"],
     ["a 10.0.0.12 b", "a 110.0.0.1 b", "a 10.0.0.10", "x,210.0.0.1,y", "a 1.10.0.0.1 b"]),
    ("2001:db8::1", ["x,2001:DB8::1,y", "a 2001:db8::1%4 b"], ["x,2001:db8::10,y", "x,2001:db8::1a,y",
                                                               "x,12001:db8::1,y"]),
])
def test_ip_is_bounded(value: str, hit: list[str], miss: list[str]) -> None:
    assert selected(ip_pattern(value), hit + miss) == hit


def test_names_are_bounded_and_caseless() -> None:
    hit = ["x,Alice@Corp.Example,y", 'x,"alice@corp.example",y', "a alice@corp.example"]
    miss = ["x,malice@corp.example,y", "x,alice@corp.example.org,y", "x,alice@corp-example,y"]
    assert selected(name_pattern("alice@corp.example"), hit + miss) == hit
    assert selected(name_pattern("corp\\eve"), ["a CORP\\eve b", "a CORP\\eve2 b"]) == ["a CORP\\eve b"]


def test_user_agent_as_iis_and_httpproxy_log_it() -> None:
    lines = ["1 GET / 10.1.1.1 python-requests/2.25.1+(x) 200", 'a,"python-requests/2.25.1 (x)",b',
             "1 GET / 10.1.1.1 Mozilla/5.0 200"]
    assert selected(PATTERNS["user_agent"]("python-requests/2.25.1 (x)"), lines) == lines[:2]


def test_url_path_raw_or_encoded() -> None:
    lines = ["POST /owa/auth/Shell.aspx - 443", "POST /owa/auth/%73hell.aspx - 443", "GET /owa/auth/logon.aspx"]
    assert selected(PATTERNS["url_path"]("/owa/auth/shell.aspx"), lines) == lines[:2]


def test_originating_only_as_a_value() -> None:
    lines = ["2021-03-03T01:00:00Z,x,Originating,y", "a,Incoming,b", "a,nonoriginatingx,b"]
    assert selected(ORIGINATING, lines) == lines[:1]


def test_no_indicator_is_no_pass() -> None:
    empty = Indicators({k: [] for k in PATTERNS})
    assert not empty and empty.patterns() == [] and empty.counts() == {}
    some = Indicators({"client_ip": ["10.0.0.1"], "user_agent": []}, [ORIGINATING])
    assert some and some.counts() == {"client_ip": 1} and len(some.patterns()) == 2


def test_indicators_read_alongside_are_the_same(tmp_path: Path) -> None:
    """``gather(alongside=True)`` (the cmdlet rows' indicators on a cursor of their own, --jobs > 1)
    gives what reading them one after the other gives, on a scanned ProxyLogon case."""
    import pyarrow.parquet as pq

    from exhunt.detections.pivot import gather
    from exhunt.events.store import connect
    from exhunt.findings.document import load_document
    from tests.reports.evidence import build_case

    case = build_case(tmp_path).case_dir
    con = connect(case / "store")
    findings = list(load_document(case).findings)
    hits = pq.read_table(case / "store" / "hits").to_pylist()
    serial, alongside = gather(con, findings, hits), gather(con, findings, hits, alongside=True)
    assert serial.patterns() and serial.values["client_ip"]
    assert (alongside.values, alongside.extra) == (serial.values, serial.extra)
