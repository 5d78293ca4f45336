"""UTF-16 text evidence: sniffed, transcoded streaming, same rows, warnings at original offsets."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from exhunt.artifacts import choose
from exhunt.artifacts import encoding as enc
from exhunt.evidence.base import EvidenceFile
from exhunt.parallel.ranges import splittable
from tests.evidence.collection import HTTPPROXY, IIS
from tests.helpers import parse_bytes

# (name, BOM, codec): the forms text evidence takes on Windows
ENCODINGS = [
    ("utf-8", b"", "utf-8"),
    ("utf-8-bom", b"\xef\xbb\xbf", "utf-8"),
    ("utf-16le-bom", b"\xff\xfe", "utf-16-le"),
    ("utf-16be-bom", b"\xfe\xff", "utf-16-be"),
    ("utf-16le", b"", "utf-16-le"),
]
IDS = [e[0] for e in ENCODINGS]


def encode(text: str, form: tuple[str, bytes, str]) -> bytes:
    return form[1] + text.encode(form[2])


@pytest.mark.parametrize("form", ENCODINGS, ids=IDS)
def test_sniff_names_the_encoding(form: tuple[str, bytes, str]) -> None:
    name, bom = enc.sniff(encode(IIS, form))
    assert name == ("utf-8" if form[2] == "utf-8" else form[2])
    assert bom == (len(form[1]) if form[2] != "utf-8" else 0)
    assert enc.text_head(encode(IIS, form)).lstrip(b"\xef\xbb\xbf") == IIS.encode()


def test_binary_is_not_utf16() -> None:
    evtx_head = b"ElfFile\x00" + bytes(24) + b"\x80\x00\x00\x00\x01\x00\x03\x00" + bytes(4000)
    assert enc.sniff(evtx_head) == ("utf-8", 0)
    assert enc.sniff(bytes(range(256)) * 4) == ("utf-8", 0)
    assert enc.sniff(b"a") == ("utf-8", 0)


@pytest.mark.parametrize("form", ENCODINGS, ids=IDS)
@pytest.mark.parametrize(("rel", "text", "artifact"), [
    ("C/inetpub/logs/LogFiles/W3SVC1/u_ex210303.log", IIS, "iis"),
    ("deep/any/name.txt", IIS, "iis"),
    ("x/HttpProxy_2021030302-1.LOG", HTTPPROXY, "exchange_log"),
])
def test_same_rows_in_every_encoding(tmp_path: Path, form: tuple[str, bytes, str], rel: str, text: str,
                                     artifact: str) -> None:
    con = parse_bytes(tmp_path, rel, encode(text, form))
    expected = parse_bytes(tmp_path / "utf8", rel, text.encode())
    query = "SELECT * EXCLUDE (path) FROM events ORDER BY line"
    assert con.execute(query).fetchall() == expected.execute(query).fetchall()
    assert con.execute("SELECT artifact FROM files").fetchone() == (artifact,)
    assert con.execute("SELECT count(*) FROM warnings").fetchone() == (0,)


@pytest.mark.parametrize("form", ENCODINGS[2:], ids=IDS[2:])
def test_warning_offsets_are_offsets_of_the_file_as_it_is(tmp_path: Path, form: tuple[str, bytes, str]) -> None:
    """Non-ASCII text (2-, 3- and 4-byte UTF-8) before a bad line: its offset is still the original's."""
    body = ("2021-03-03 02:05:00 10.0.0.5 GET /owa/auth/é€😀.aspx - 443 - 203.0.113.9 curl - 200 0 0 15\r\n"
            "2021-03-03 02:05:01 10.0.0.5 GET /owa/\x00 - 443 - 203.0.113.9 curl - 200 0 0 15\r\n"
            "2021-03-03 02:05:02 10.0.0.5 GET /owa/ok - 443 - 203.0.113.9 curl - 200 0 0 15\r\n")
    text = IIS + body
    data = encode(text, form)
    bad_line = text.index("2021-03-03 02:05:01")
    expected_offset = len(form[1]) + len(text[:bad_line].encode(form[2]))
    con = parse_bytes(tmp_path, "u_ex1.log", data)
    assert con.execute('SELECT line, "offset" FROM warnings').fetchall() == [(7, expected_offset)]
    assert con.execute("SELECT line FROM events ORDER BY line").fetchall() == [(5,), (6,), (8,)]


def test_lone_surrogate_is_a_warning_and_the_rest_is_read(tmp_path: Path) -> None:
    data = bytearray(b"\xff\xfe" + IIS.encode("utf-16-le"))
    line = "2021-03-03 02:05:01 10.0.0.5 GET /owa/X - 443 - 203.0.113.9 curl - 200 0 0 15\r\n"
    at = len(data) + 2 * line.index("X")
    data += line.encode("utf-16-le")
    data[at:at + 2] = b"\x00\xd8"  # a high surrogate with no low one
    con = parse_bytes(tmp_path, "u_ex1.log", bytes(data))
    assert con.execute("SELECT count(*) FROM events").fetchone() == (2,)
    assert con.execute("SELECT uri FROM events WHERE line = 6").fetchone() == ("/owa/\ufffd",)
    ((line_no, offset, message),) = con.execute('SELECT line, "offset", message FROM warnings').fetchall()
    assert offset == at and "UTF-16LE" in message and line_no is None


def test_transcoding_streams_across_read_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small reads split surrogate pairs and code units; the output and the offset map stay exact."""
    monkeypatch.setattr(enc, "READ", 7)
    text = "ab😀c\né€x\n" * 50

    class Ctx:
        offset_map = None
        encoding = "utf-8"
        warned: list[tuple[str, int | None, int | None]] = []

        def warn_original(self, message: str, line: int | None, offset: int | None) -> None:
            self.warned.append((message, line, offset))

    ctx = Ctx()
    stream = io.BufferedReader(io.BytesIO(b"\xff\xfe" + text.encode("utf-16-le")))  # type: ignore[arg-type]
    out = enc.utf8_stream(ctx, stream)  # type: ignore[arg-type]
    utf8 = out.read()
    assert utf8 == text.encode() and not ctx.warned
    for k in [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]:  # line starts: what parsers cite
        assert ctx.offset_map(len(text[:k].encode())) == 2 + len(text[:k].encode("utf-16-le"))  # type: ignore[misc]


def _file(tmp_path: Path, rel: str, data: bytes) -> EvidenceFile:
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    st = path.stat()
    return EvidenceFile("directory", str(tmp_path), rel, st.st_size, st.st_mtime, st.st_ctime, st.st_atime)


def test_utf16_logs_are_claimed_but_never_split(tmp_path: Path) -> None:
    data = b"\xff\xfe" + (IIS * 40).encode("utf-16-le")
    assert choose("any/name.txt", data[:4096]) is not None
    assert splittable(_file(tmp_path, "u_ex1.log", data), split_size=1000) is None
    assert splittable(_file(tmp_path, "u_ex2.log", (IIS * 40).encode()), split_size=1000) == "iis"


def _text_cases() -> list[Any]:
    from tests.artifacts.test_parser_cases import _cases

    return [p for p in _cases() if "text" in p.values[1]]


@pytest.mark.parametrize("form", ENCODINGS[1:], ids=IDS[1:])
@pytest.mark.parametrize(("artifact", "case"), _text_cases())
def test_parser_cases_in_every_encoding(tmp_path: Path, artifact: str, case: dict[str, Any],
                                        form: tuple[str, bytes, str]) -> None:
    """Every text parser case (tests/artifacts/cases) saved in another encoding: the same rows,
    warnings (lines and messages) and facts as the UTF-8 file."""
    from tests.artifacts.test_parser_cases import _content

    text = _content(case).decode("utf-8")
    expected = parse_bytes(tmp_path / "utf8", case["path"], text.encode())
    got = parse_bytes(tmp_path / form[0], case["path"], encode(text, form))
    for query in ("SELECT artifact FROM files", "SELECT * EXCLUDE (path) FROM events ORDER BY line",
                  "SELECT line, message FROM warnings ORDER BY line, message",
                  "SELECT fact, value, line FROM host_facts ORDER BY ALL"):
        assert got.execute(query).fetchall() == expected.execute(query).fetchall(), query
