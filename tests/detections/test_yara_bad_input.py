"""Bad evidence during the file pass: odd names, links out of the evidence, vanished files, deep trees."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.detections.yara import load_rules
from exhunt.events.store import connect
from exhunt.evidence.base import EvidenceFile
from exhunt.worker import init_scanner, process_files

SHELL = b'<%eval request("x")%>'


@pytest.mark.skipif(sys.platform == "win32", reason="needs non-UTF-8 file names and symlinks")
def test_odd_names_and_outside_links_are_not_fatal(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (tmp_path / "outside.aspx").write_bytes(SHELL)
    with open(os.path.join(os.fsencode(ev), b"sh\xffell.aspx"), "wb") as fh:
        fh.write(SHELL)
    os.symlink(tmp_path / "outside.aspx", ev / "link.aspx")
    deep = ev.joinpath(*["d"] * 70)
    deep.mkdir(parents=True)
    (deep / "x.aspx").write_bytes(SHELL)
    document = scan([ev], ScanOptions(out=tmp_path / "case", quiet=True, jobs=1)).document
    paths = {e.path for f in document.findings for e in f.evidence if f.check.startswith("yara.")}
    assert paths == {"sh\\xffell.aspx"}  # the link is never followed, the too-deep file never listed
    messages = {s["message"] for s in document.hosts[0].coverage.warning_samples}
    assert "symbolic link or junction not followed" in messages and any("deeper than" in m for m in messages)


def test_file_vanished_before_the_scan(tmp_path: Path) -> None:
    init_scanner(load_rules(cache=tmp_path / "c").blob, 100 << 20)
    try:
        (tmp_path / "ev").mkdir()
        (tmp_path / "ev" / "ok.aspx").write_bytes(SHELL)
        gone = EvidenceFile("directory", str(tmp_path / "ev"), "gone.aspx", 10)
        ok = EvidenceFile("directory", str(tmp_path / "ev"), "ok.aspx", len(SHELL))
        results = process_files([gone, ok], "h", str(tmp_path / "store"))
    finally:
        init_scanner(None, 0)
    assert [r.warnings for r in results] == [1, 0]
    con = connect(tmp_path / "store")
    assert con.execute("SELECT DISTINCT path FROM matches").fetchall() == [("ok.aspx",)]
    assert "cannot open" in con.execute("SELECT message FROM warnings").fetchone()[0]
