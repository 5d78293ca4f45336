"""A log parsed in byte ranges gives exactly the rows, warnings, facts and hashes of one whole parse."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from exhunt.artifacts import w3c_fast
from exhunt.events.store import connect
from exhunt.evidence.base import EvidenceFile
from exhunt.parallel.pool import PoolOptions, make_units, run
from exhunt.parallel.ranges import chunk_starts, plan_ranges
from exhunt.parallel.units import RangeUnit
from exhunt.worker import process_file

IIS_FIELDS = ["date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) sc-status",
              "date time cs-method cs-uri-stem c-ip sc-status cs(User-Agent) cs-uri-query",
              "time date c-ip c-ip cs-uri-stem sc-status"]  # the last one has a duplicate field name
EXCHANGE_HEAD = ("#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: HttpProxy Logs\r\n"
                 "#Fields: DateTime,MajorVersion,MinorVersion,BuildVersion,RevisionVersion,UrlStem,UrlQuery,"
                 "AnchorMailbox,ClientIpAddress,HttpStatus,Method,UserAgent\r\n")


def iis_log(lines: int, seed: int, newline: str) -> bytes:
    """Header blocks changing mid-file, CRLF or LF, and the odd lines that force the reference parser."""
    rng = random.Random(seed)
    out = ["\ufeff#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0"]
    fields = IIS_FIELDS[0].split(" ")
    out.append("#Fields: " + " ".join(fields))
    for n in range(lines):
        roll = rng.random()
        if roll < 0.01:
            fields = rng.choice(IIS_FIELDS).split(" ")
            out.append(f"#Date: 2021-03-0{rng.randint(1, 9)} 00:00:00")
            out.append("#Fields: " + " ".join(fields))
            continue
        if roll < 0.012:
            out.append("")  # a blank line
            continue
        if roll < 0.014:
            out.append("2021-03-03 01:02:03 bad\xff\x00line")  # NUL and bad UTF-8 (latin-1 encoded below)
            continue
        values = {"date": f"2021-03-0{rng.randint(1, 9)}", "time": f"{rng.randint(0, 23):02d}:00:{n % 60:02d}",
                  "s-ip": "10.0.0.5", "cs-method": rng.choice(["GET", "POST"]),
                  "cs-uri-stem": rng.choice(["/owa/auth/15.1.2176/themes/x.png", "/ecp/y.js", "/owa/%zz",
                                             "/aspnet_client/a.aspx"]),
                  "cs-uri-query": rng.choice(["-", "a=1&b=%41", "q=%"]), "s-port": "443", "cs-username": "-",
                  "c-ip": f"192.0.2.{rng.randint(1, 9)}", "cs(User-Agent)": "Mozilla/5.0+x",
                  "sc-status": rng.choice(["200", "404", "x"])}
        row = [values.get(f, "-") for f in fields]
        if rng.random() < 0.01:
            row.append("extra")
        out.append(" ".join(row))
    return (newline.join(out) + newline).encode("latin-1", "replace").replace(b"\xc3\xbf", b"\xff")


def exchange_log(lines: int, seed: int) -> bytes:
    rng = random.Random(seed)
    body = []
    for n in range(lines):
        if n and n % 97 == 0:
            body.append(EXCHANGE_HEAD.rstrip("\r\n"))  # the whole header again after a "restart"
        build = rng.choice(["15,1,2176,2", "15,2,986,5"])
        body.append(f"2021-03-03T01:02:{n % 60:02d}.123Z,{build},/ecp/y.js,,ServerInfo~a]@ex.local:444/"
                    f"ecp/proxyLogon.ecp?#,192.0.2.{n % 7},{rng.choice(['200', '500'])},POST,python-requests")
    return (EXCHANGE_HEAD + "\r\n".join(body) + "\r\n").encode()


def _file(root: Path, rel: str) -> EvidenceFile:
    st = (root / rel).stat()
    return EvidenceFile("directory", str(root), rel, st.st_size, st.st_mtime, st.st_ctime, st.st_atime)


def snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    events = con.execute("SELECT * EXCLUDE (fields), fields FROM events ORDER BY path, line").fetchall()
    return {
        "events": [row[:-1] + (json.loads(row[-1]) if row[-1] else None,) for row in events],
        "warnings": con.execute("SELECT * FROM warnings ORDER BY path, line, message").fetchall(),
        "facts": con.execute("SELECT * FROM host_facts ORDER BY path, fact, value").fetchall(),
        "files": con.execute("SELECT * FROM files ORDER BY path").fetchall(),
    }


def whole(tmp: Path, root: Path, rel: str, chunk: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    monkeypatch.setattr(w3c_fast, "CHUNK", chunk)
    process_file(_file(root, rel), "h", str(tmp / "whole"))
    monkeypatch.undo()
    return snapshot(connect(tmp / "whole"))


def split(tmp: Path, root: Path, rel: str, chunk: int, split_size: int, jobs: int = 1) -> dict[str, list]:
    options = PoolOptions(jobs=jobs, split_size=split_size, chunk=chunk, settings=(chunk, None, None, None, False))
    # planned for 2 workers (one file alone is not balanced: it is split), run as ``jobs`` says
    units, splits = make_units([([_file(root, rel)], "h")], replace(options, jobs=2))
    assert sum(isinstance(u, RangeUnit) for u in units) > 2 and len(splits) == 1
    results = run(units, splits, tmp / "split", options, (None, 0, False), lambda n: None)
    assert [r.rel for r in results] == [rel]
    return snapshot(connect(tmp / "split"))


def assert_same(a: dict[str, list], b: dict[str, list]) -> None:
    for table in a:
        assert len(a[table]) == len(b[table]), table
        for x, y in zip(a[table], b[table], strict=True):
            assert x == y, (table, x, y)


@pytest.mark.parametrize(("newline", "chunk", "split_size"), [
    ("\r\n", 256, 700), ("\n", 97, 300), ("\r\n", 1000, 1000), ("\n", 4096, 5000)])
def test_split_iis_equals_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, newline: str, chunk: int,
                                split_size: int) -> None:
    root = tmp_path / "ev"
    root.mkdir()
    (root / "u_ex210303.log").write_bytes(iis_log(1500, chunk, newline))
    expected = whole(tmp_path, root, "u_ex210303.log", chunk, monkeypatch)
    assert expected["events"] and expected["warnings"] and expected["facts"]
    assert_same(split(tmp_path, root, "u_ex210303.log", chunk, split_size), expected)


def test_split_exchange_equals_whole_in_a_spawn_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ev"
    rel = "Logging/HttpProxy/Ecp/HttpProxy_2021030301-1.LOG"
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_bytes(exchange_log(800, 1))
    expected = whole(tmp_path, root, rel, 512, monkeypatch)
    assert {f[2] for f in expected["facts"]} == {"15.01.2176.002", "15.1.2176.2", "15.2.986.5"}
    assert_same(split(tmp_path, root, rel, 512, 4000, jobs=2), expected)


def test_ranges_start_on_engine_chunks_and_carry_the_header_block(tmp_path: Path) -> None:
    data = b"#Fields: a b\n1 2\n#Fields: c d\n3 4\n5 6\n" * 3
    path = tmp_path / "u_ex1.log"
    path.write_bytes(data)
    # chunk 13: the first cut falls right after the first header line
    assert chunk_starts(data, len(data), 13)[:2] == [0, 13]
    units = plan_ranges(_file(tmp_path, "u_ex1.log"), "h", "iis", 1, 13, " ")
    assert [u.start for u in units][:3] == [0, 13, 17]
    assert units[1].fields == ("a", "b") and units[1].line0 == 1
    assert units[2].fields == ("a", "b") and units[2].line0 == 2  # the #Fields: c d line is inside it
    assert units[3].fields == ("c", "d")
    assert [u.end for u in units[:-1]] == [u.start for u in units[1:]] and units[-1].end == len(data)


def test_merge_says_a_repeated_warning_once(tmp_path: Path) -> None:
    """A split file that vanished before parsing: every range and the whole-file pass say "cannot
    open"; the merged file says it once, as an unsplit file does."""
    from exhunt.parallel.ranges import merge
    from exhunt.parallel.units import UnitResult
    from exhunt.worker import FileResult

    gone = {"host": "h", "artifact": "iis", "path": "u_ex.log", "line": None, "offset": None,
            "message": "cannot open: No such file or directory"}
    other = {**gone, "line": 7, "offset": 700, "message": "invalid UTF-8"}
    ranges = [UnitResult(f"r{i}", [FileResult("u_ex.log", "iis", 0, 0, 0)], [gone], [], 1) for i in range(3)]
    whole = UnitResult("w", [FileResult("u_ex.log", "iis", 10, 0, 0)], [{**gone, "artifact": "files"}, other], [], 2)
    result = merge(ranges, whole, tmp_path, "h", "merged")
    rows = connect(tmp_path).execute("SELECT line, message FROM warnings ORDER BY message").fetchall()
    assert rows == [(None, gone["message"]), (7, "invalid UTF-8")]
    assert result.warnings == 2
