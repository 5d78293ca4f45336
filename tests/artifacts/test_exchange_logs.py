from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import shared_path
from tests.helpers import parse_bytes, parse_paths

HEADER = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: HttpProxy Logs\r\n"
    "#Date: 2021-03-03T00:00:00.000Z\r\n"
    "#Fields: DateTime,RequestId,Protocol,UrlStem,AnchorMailbox,UserAgent,ClientIpAddress,HttpStatus,Method,"
    "UrlQuery\r\n"
)


def test_hash_and_question_mark_inside_values_are_data(tmp_path: Path) -> None:
    line = ("2021-03-03T02:01:02.000Z,r1,Ecp,/ecp/y.js,ServerInfo~a]@exch01.corp.local:444/ecp/proxyLogon.ecp?#,"
            "ExchangeServicesClient/0.0.0.0,203.0.113.9,241,POST,\r\n")
    con = parse_bytes(tmp_path, "Ecp/HttpProxy_1.LOG", ("\ufeff" + HEADER + line).encode())
    row = con.execute("SELECT anchor_mailbox, client_ip, status, ts, line, source FROM events").fetchone()
    assert row[0] == "ServerInfo~a]@exch01.corp.local:444/ecp/proxyLogon.ecp?#"
    assert row[1:3] == ("203.0.113.9", 241)
    assert row[3].isoformat().startswith("2021-03-03T02:01:02")
    assert row[4:] == (6, "httpproxy")
    assert con.execute("SELECT count(*) FROM warnings").fetchone()[0] == 0


def test_fields_change_mid_file_and_quoted_commas(tmp_path: Path) -> None:
    data = (HEADER
            + '2021-03-03T02:01:02Z,r1,Owa,/owa/,"a,b",UA,198.51.100.1,200,GET,\n'
            + "#Fields: DateTime,ClientIpAddress,UrlStem\n"
            + "2021-03-03T03:00:00Z,198.51.100.2,/ecp/\n"
            + "2021-03-03T03:00:01Z,198.51.100.3,/ews/")  # truncated last line, no newline
    con = parse_bytes(tmp_path, "x.log", data.encode())
    rows = con.execute("SELECT anchor_mailbox, client_ip, uri FROM events ORDER BY line").fetchall()
    assert rows == [("a,b", "198.51.100.1", "/owa/"), (None, "198.51.100.2", "/ecp/"), (None, "198.51.100.3", "/ews/")]


def test_non_utf8_and_nul_lines_are_warnings_with_position(tmp_path: Path) -> None:
    data = HEADER.encode() + b"2021-03-03T02:01:02Z,r\xff1,Owa,/owa/,,UA,1.2.3.4,200,GET,\r\n" + b"\x00\x00\x00\r\n"
    con = parse_bytes(tmp_path, "y.log", data)
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    warnings = con.execute("SELECT line, message FROM warnings ORDER BY line").fetchall()
    assert [w[0] for w in warnings] == [6, 7]
    assert "UTF-8" in warnings[0][1] and "NUL" in warnings[1][1]


def test_missing_fields_header_is_reported(tmp_path: Path) -> None:
    data = b"#Software: Microsoft Exchange Server\n2021-03-03T02:01:02Z,a,b\n"
    con = parse_bytes(tmp_path, "z.log", data)
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert "before any #Fields" in con.execute("SELECT message FROM warnings").fetchone()[0]


def test_every_shared_sample_parses(tmp_path: Path) -> None:
    folder = shared_path("exchange-log-formats")
    rels = sorted(p.name for p in folder.iterdir() if p.is_file())
    con = parse_paths(tmp_path, folder, rels)
    per_file = dict(con.execute("SELECT path, count(*) FROM events GROUP BY ALL").fetchall())
    assert set(per_file) == set(rels), "every sample yields rows"
    warnings = con.execute("SELECT path, message FROM warnings").fetchall()
    assert [w[0] for w in warnings] == ["messagetracking_malformed_fields_header.log"]
    assert con.execute("SELECT count(*) FROM events WHERE ts IS NULL").fetchone()[0] == 0
    sources = {r[0] for r in con.execute("SELECT DISTINCT source FROM events").fetchall()}
    assert {"httpproxy", "ecp_server", "message_tracking"} <= sources


@pytest.mark.parametrize("software", ["#Software: Microsoft Exchange Server", "#SOFTWARE: microsoft exchange server"])
def test_sniffed_by_header_in_any_case(tmp_path: Path, software: str) -> None:
    data = f"{software}\n#Log-type: HttpProxy Logs\n#fields: DateTime,UrlStem\n2021-03-03T00:00:00Z,/owa/\n"
    con = parse_bytes(tmp_path, "deep/random/name.txt", data.encode())
    assert con.execute("SELECT source, uri FROM events").fetchone() == ("httpproxy", "/owa/")


@pytest.mark.parametrize("fast", [True, False])
def test_the_build_from_a_version_header_cites_that_header_line(tmp_path: Path, fast: bool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A block's #Version is a fact of its own header line (2 here, then 8 after the restart), not of the
    block's first row: the exposure finding cites the line that says the build."""
    from exhunt.artifacts.exchange_logs import ExchangeLog

    monkeypatch.setattr(ExchangeLog, "fast", fast)
    row = "2021-03-03T02:01:02Z,r1,Owa,/owa/,,UA,1.2.3.4,200,GET,\r\n"
    second = HEADER.replace("15.01.2176.002", "15.01.2308.008")
    con = parse_bytes(tmp_path, "HttpProxy/Owa/HttpProxy_2021030300-1.LOG", (HEADER + row + second + row).encode())
    facts = con.execute("SELECT value, line FROM host_facts WHERE fact = 'build' AND value LIKE '15.01.%' "
                        "ORDER BY line").fetchall()
    assert facts == [("15.01.2176.002", 2), ("15.01.2308.008", 8)]
