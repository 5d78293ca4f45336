"""No mailbox is listed for the real-format benign Exchange logs of the shared reference data."""

from __future__ import annotations

from pathlib import Path

from exhunt.api import ScanOptions, scan
from tests.conftest import shared_path


def test_shared_exchange_log_formats_list_no_mailbox(tmp_path: Path) -> None:
    folder = shared_path("exchange-log-formats")
    doc = scan([folder], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True)).document
    assert sum(h.coverage.events for h in doc.hosts) > 0
    assert doc.impact == ()
