"""The Arrow/DuckDB fast path gives exactly the rows, warnings and facts of the reference parser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exhunt.artifacts import w3c_fast
from exhunt.artifacts.exchange_logs import ExchangeLog
from exhunt.artifacts.iis import IisLog
from exhunt.demo import DemoSpec, generate
from tests.conftest import shared_path
from tests.helpers import parse_paths

EXCHANGE_HEAD = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: HttpProxy Logs\r\n"
    "#Fields: DateTime,MajorVersion,MinorVersion,BuildVersion,RevisionVersion,UrlStem,UrlQuery,AnchorMailbox,"
    "ClientIpAddress,HttpStatus,Method,UserAgent\r\n"
)
IIS_HEAD = ("#Software: Microsoft Internet Information Services 10.0\r\n#Fields: date time s-ip cs-method "
            "cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) sc-status\r\n")


@contextmanager
def reference_only() -> Iterator[None]:
    saved = ExchangeLog.fast, IisLog.fast
    ExchangeLog.fast = IisLog.fast = False
    try:
        yield
    finally:
        ExchangeLog.fast, IisLog.fast = saved


def snapshot(tmp: Path, root: Path, rels: list[str]) -> dict[str, list[tuple]]:
    con = parse_paths(tmp, root, rels)
    events = con.execute("SELECT * EXCLUDE (fields), fields FROM events ORDER BY path, line").fetchall()
    return {
        "events": [row[:-1] + (json.loads(row[-1]) if row[-1] else None,) for row in events],
        "warnings": con.execute("SELECT * FROM warnings ORDER BY path, line, message").fetchall(),
        "facts": con.execute("SELECT * FROM host_facts ORDER BY path, fact, value").fetchall(),
    }


@contextmanager
def fast_always() -> Iterator[None]:
    """Small inputs normally take the reference parser (cheaper): force the fast path to compare."""
    saved = w3c_fast.MIN_FAST_BYTES
    w3c_fast.MIN_FAST_BYTES = 0
    try:
        yield
    finally:
        w3c_fast.MIN_FAST_BYTES = saved


def assert_same(tmp_path: Path, root: Path, rels: list[str]) -> dict[str, list[tuple]]:
    with fast_always():
        fast = snapshot(tmp_path / "fast", root, rels)
    with reference_only():
        slow = snapshot(tmp_path / "slow", root, rels)
    for table in ("events", "warnings", "facts"):
        assert len(fast[table]) == len(slow[table]), table
        for a, b in zip(fast[table], slow[table], strict=True):
            assert a == b, (table, a, b)
    return fast


def write(root: Path, rel: str, data: bytes) -> str:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)
    return rel


def test_shared_exchange_samples(tmp_path: Path) -> None:
    folder = shared_path("exchange-log-formats")
    assert_same(tmp_path, folder, sorted(p.name for p in folder.iterdir()))


def test_demo_collection(tmp_path: Path) -> None:
    generate(tmp_path / "ev", DemoSpec(per_day=600))
    rels = sorted(str(p.relative_to(tmp_path / "ev")) for p in (tmp_path / "ev").rglob("*") if p.is_file())
    out = assert_same(tmp_path, tmp_path / "ev", rels)
    assert len(out["events"]) > 1800


EDGE_CASES = {
    "quoted commas and hash in values": EXCHANGE_HEAD
    + '2021-03-03T02:00:00.123Z,15,1,2176,2,/ecp/y.js,,"a,b",1.2.3.4,200,POST,"UA, x"\r\n'
    + "2021-03-03T02:00:01Z,15,1,2176,2,/ecp/y.js,?x=1#,ServerInfo~a]@x:444/ecp/y.ecp?#,1.2.3.4,241,POST,ua\r\n",
    "fields change mid-file": EXCHANGE_HEAD + "2021-03-03T02:00:00Z,15,1,2176,2,/owa/,,,1.2.3.4,200,GET,ua\r\n"
    + "#Fields: DateTime,UrlStem\r\n2021-03-03T03:00:00Z,/ecp/\r\n",
    "blank lines and truncated last line": EXCHANGE_HEAD + "\r\n2021-03-03T02:00:00Z,15,1,2176,2,/owa/,,,1,200,G,u"
    + "\r\n\r\n2021-03-03T02:00:01Z,15,1,2176,2,/o",
    "bad timestamp, status and encoding": EXCHANGE_HEAD
    + "yesterday,15,1,2176,2,/owa/%ff,,,1.2.3.4,20x,GET,ua\r\n"
    + "2021-03-03T02:00:00Z,15,1,x,2,/o%zz,,,1,99999999999,G,u\r\n",
    "too many and too few values": EXCHANGE_HEAD + "2021-03-03T02:00:00Z,15,1,2176,2,/a,,,1,200,G,u,extra\r\n"
    + "2021-03-03T02:00:00Z,15,1\r\n",
    "iis plus and percent encodings": IIS_HEAD
    + "2021-03-03 02:00:00 10.0.0.1 POST /ecp/y.js a=%20b+c 443 - 203.0.113.9 Mozilla/5.0+(X) 200\r\n"
    + "2021-03-03 02:00:01 10.0.0.1 GET /owa/auth/15.1.2176/themes/x.png - 443 CORP\\bob 10.0.0.9 - 304\n",
    "exchange year 0000": EXCHANGE_HEAD + "0000-01-01T02:00:00Z,15,1,2176,2,/owa/,,,1.2.3.4,200,GET,ua\r\n",
    "exchange day that does not exist": EXCHANGE_HEAD + "2021-02-30T02:00:00Z,15,1,2176,2,/owa/,,,1,200,GET,u\r\n",
    "exchange empty time": EXCHANGE_HEAD + ",15,1,2176,2,/owa/,,,1.2.3.4,200,GET,ua\r\n",
    "exchange escapes, plus and repeated values": EXCHANGE_HEAD
    + "2021-03-03T02:00:00.5Z,15,1,2176,2,/ecp/%ff+x.js,?a=%2B+b,,1.2.3.4,200,POST,a+b\r\n" * 2
    + "2021-03-03T02:00:01.123456Z,15,1,2176,2,,,,,,,\r\n",
    "iis year 0000": IIS_HEAD + "0000-01-01 02:00:00 10.0.0.1 GET / - 443 - 1.1.1.1 ua 200\r\n",
    "iis day that does not exist": IIS_HEAD + "2021-02-29 02:00:00 10.0.0.1 GET / - 443 - 1.1.1.1 ua 200\r\n",
    "iis leap second": IIS_HEAD + "2021-03-03 23:59:60 10.0.0.1 GET / - 443 - 1.1.1.1 ua 200\r\n",
    "iis fractions, percent escapes and repeated values": IIS_HEAD
    + "2021-03-03 02:00:00.5 10.0.0.1 GET /o%ff%zz/%E2%82%AC q=%ff+%2B&r=%zz 443 - 1.1.1.1 a+b 200\r\n" * 2
    + "2021-03-03 02:00:00.123456 10.0.0.1 GET /plain q=a+b 443 - 1.1.1.1 - 999999999\r\n"
    + "2021-03-03 02:00:01 10.0.0.1 GET - a%41 443 - 1.1.1.1 - 1234567890\r\n",
    "exchange line ends mixed mid-segment": EXCHANGE_HEAD
    + "2021-03-03T02:00:00Z,15,1,2176,2,/owa/,,,1.2.3.4,200,GET,ua\r\n"
    + "2021-03-03T02:00:01Z,15,1,2176,2,/ecp/,,,1.2.3.4,200,GET,ua\n"
    + "2021-03-03T02:00:02Z,15,1,2176,2,/ews/,,,1.2.3.4,200,GET,\"a,b\"\r\n",
    "iis x-forwarded-for with the port a proxy adds":
    "#Fields: date time c-ip cs-uri-stem sc-status X-Forwarded-For\r\n"
    + "2021-03-03 02:00:00 10.0.0.5 /owa/ 200 198.51.100.9:52311\r\n"
    + "2021-03-03 02:00:01 10.0.0.5 /owa/ 200 [2001:db8::9]:443\r\n"
    + "2021-03-03 02:00:02 10.0.0.5 /owa/ 200 2001:db8::9\r\n"
    + "2021-03-03 02:00:03 10.0.0.5 /owa/ 200 203.0.113.1,+198.51.100.9:52399\r\n",
    "iis double space, tab and odd dates": IIS_HEAD
    + "2021-03-03 02:00:00  10.0.0.1 GET / - 443 - 1.1.1.1 ua 200\r\n"
    + "2021-3-3 02:00:00 10.0.0.1 GET /\t - 443 - 1.1.1.1 ua 200\r\n",
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases(tmp_path: Path, name: str) -> None:
    data = EDGE_CASES[name].encode()
    rel = write(tmp_path / "ev", "u_ex1.log" if name.startswith("iis") else "x.LOG", data)
    assert_same(tmp_path, tmp_path / "ev", [rel])


def test_non_utf8_nul_and_bom(tmp_path: Path) -> None:
    data = (b"\xef\xbb\xbf" + EXCHANGE_HEAD.encode() + b"2021-03-03T02:00:00Z,15,1,2176,2,/\xff,,,1,200,G,u\r\n"
            + b"\x00\x00\r\n2021-03-03T02:00:00Z,15,1,2176,2,/ok,,,1,200,G,u\r\n")
    rel = write(tmp_path / "ev", "x.LOG", data)
    out = assert_same(tmp_path, tmp_path / "ev", [rel])
    assert len(out["warnings"]) == 2


VALUE = st.lists(st.sampled_from(list('ab,"# %+?~]@/\\\t\r-19Zé') + ["%ff", "%41"]), max_size=8).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(VALUE, min_size=10, max_size=14), max_size=6), iis=st.booleans())
def test_generated_logs(tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]], iis: bool) -> None:
    tmp = tmp_path_factory.mktemp("gen")
    sep = " " if iis else ","
    lines = [sep.join(["2021-03-03", "02:00:00"] if iis else ["2021-03-03T02:00:00Z"]) + sep + sep.join(r)
             for r in rows]
    data = ((IIS_HEAD if iis else EXCHANGE_HEAD) + "\r\n".join(lines)).encode()
    rel = write(tmp / "ev", "u_ex1.log" if iis else "x.LOG", data)
    assert_same(tmp, tmp / "ev", [rel])


@pytest.mark.slow
def test_shared_benign_iis(tmp_path: Path) -> None:
    folder = shared_path("benign", "iis-logs", "know-it-peru-WebKnowIT", "logs", "LogFiles", "W3SVC1")
    rels = sorted(p.name for p in folder.iterdir())[:120]
    assert_same(tmp_path, folder, rels)


def test_fast_path_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard against the comparison above silently comparing the reference with itself."""
    calls: list[int] = []
    real = w3c_fast.W3cEngine._fast

    def spy(self: w3c_fast.W3cEngine, data: bytes, lines: int) -> object:
        result = real(self, data, lines)
        calls.append(0 if result is None else result.num_rows)
        return result

    monkeypatch.setattr(w3c_fast.W3cEngine, "_fast", spy)
    rel = write(tmp_path / "ev", "u_ex1.log", (IIS_HEAD + EDGE_CASES["iis plus and percent encodings"][len(IIS_HEAD):]
                                               * 1).encode())
    with fast_always():
        parse_paths(tmp_path, tmp_path / "ev", [rel])
    assert calls == [2]


@pytest.mark.parametrize("rows", [['"\r'], ['"\t', ""], ['"', ""]])
def test_open_quote_at_line_end(tmp_path: Path, rows: list[str]) -> None:
    """A quote left open at the end of a line (found by the property above): Arrow took the line end
    into the value (or a bare CR at the end of the file), the reference does not."""
    lines = ["2021-03-03T02:00:00Z," + ",".join([""] * 10 + ([last] if last else [])) for last in rows]
    rel = write(tmp_path / "ev", "x.LOG", (EXCHANGE_HEAD + "\r\n".join(lines)).encode())
    assert_same(tmp_path, tmp_path / "ev", [rel])


def _header_lines_reference(chunk: bytes) -> list[tuple[int, int]]:
    """Every line starting with ``#``, line by line (what header_lines finds with byte searches)."""
    out, pos = [], 0
    while pos < len(chunk):
        end = chunk.find(b"\n", pos) + 1 or len(chunk)
        if chunk.startswith(b"#", pos):
            out.append((pos, end))
        pos = end
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"#", b"\n", b"a", b",", b"#F: x\n", b"\r\n"]), max_size=200).map(b"".join))
def test_header_lines_finds_every_header(chunk: bytes) -> None:
    """Including lines holding many ``#`` (the two-byte search takes over after 64 misses)."""
    assert list(w3c_fast.header_lines(chunk)) == _header_lines_reference(chunk)


@pytest.mark.parametrize("chunk", [96, 150, 260, 270, 300, 1 << 20])
def test_leading_headers_read_apart_give_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       chunk: int) -> None:
    """The header lines at a file's start are read on their own (``_leading_headers``) so the first
    large read is not sliced: rows, line numbers, warnings and facts as when they are read with the
    data, whatever the chunk size (a BOM, headers again later, a bad line)."""
    body = "".join(f"2021-03-03T02:00:{n:02d}Z,15,1,2176,2,/owa/{n},,,1,200,GET,u\r\n" for n in range(12))
    data = (b"\xef\xbb\xbf" + EXCHANGE_HEAD.encode() + body.encode() + b"\xff,bad\r\n"
            + EXCHANGE_HEAD.encode() + body.encode())
    rels = [write(tmp_path / "ev", "x.LOG", data),
            write(tmp_path / "ev", "u_ex1.log", (IIS_HEAD + "2021-03-03 02:00:00 10.0.0.1 GET / - 443 - 1.1.1.1 ua 200"
                                                 "\r\n" * 2).encode())]
    monkeypatch.setattr(w3c_fast, "CHUNK", chunk)
    ends: list[int] = []  # where each chunk ends in its file: byte ranges of a split file replay them
    chunk_of = w3c_fast.W3cEngine._chunk

    def recorded(engine: w3c_fast.W3cEngine, data: bytes) -> None:
        chunk_of(engine, data)
        ends.append(engine.offset)

    monkeypatch.setattr(w3c_fast.W3cEngine, "_chunk", recorded)
    with fast_always():
        apart = snapshot(tmp_path / "apart", tmp_path / "ev", rels)
        apart_ends, ends[:] = list(ends), []
        monkeypatch.setattr(w3c_fast, "_leading_headers", lambda stream, size: b"")
        together = snapshot(tmp_path / "together", tmp_path / "ev", rels)
    assert apart == together
    assert set(apart_ends) - set(ends) <= {243, len(IIS_HEAD)}  # the headers' own chunk, when read apart
    assert set(ends) <= set(apart_ends)
    assert len(apart["events"]) == 27


