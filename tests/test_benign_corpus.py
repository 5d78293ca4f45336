"""False positives: real internet-facing IIS logs must give no compromise finding."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.events.store import connect
from tests.conftest import shared_path


@pytest.mark.slow
@pytest.mark.parametrize("index", ["full", "triage"])
def test_shared_benign_iis_logs_give_no_findings(tmp_path: Path, index: str) -> None:
    folder = shared_path("benign", "iis-logs")
    out = tmp_path / "case"
    doc = scan([folder], ScanOptions(out=out, jobs=2, quiet=True, index=index)).document
    con = connect(out / "store")
    (web,) = con.execute("SELECT count(*) FROM events WHERE source = 'iis' AND path LIKE '%/W3SVC%'").fetchone()
    if index == "full":
        assert web == 78_937, "every web-server entry of the corpus is parsed"
    else:  # only the lines the detections need; no finding gives an indicator: no pivot pass
        assert 0 < web < 78_937 / 4, web
        assert doc.rules["triage"]["pivot"]["rows"] == 0
    assert [f.check for f in doc.findings if f.category == "compromise"] == []
    assert doc.impact == (), "no mailbox is listed for benign traffic"
