"""``--index triage`` (the default) and ``--index full`` give identical findings: ids, keys,
severities, confidences, counts, first and last seen. The full index is the oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.findings.model import AssessmentDocument
from tests.detections.caselogs import write_case_logs
from tests.detections.test_cases import load_cases


def summary(document: AssessmentDocument) -> list[tuple[Any, ...]]:
    return sorted((f.id, f.check, f.host, f.key, f.severity, f.confidence, f.count, f.first_seen, f.last_seen)
                  for f in document.findings)


def both_ways(evidence: Path, out: Path, **options: Any) -> tuple[AssessmentDocument, AssessmentDocument]:
    docs = [scan([evidence], ScanOptions(out=out / index, quiet=True, progress=False, index=index, **options)).document
            for index in ("triage", "full")]
    return docs[0], docs[1]


def stored_rows(case: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in (case / "store" / "events").rglob("*.parquet"))


def test_every_detection_case_fixture_both_ways(tmp_path: Path) -> None:
    """Every text-log row of every detection case, between benign lines, in real log files."""
    rows = [r for case in load_cases() for r in ((case.values[0].get("rows") or {}).get("events") or [])]
    write_case_logs(tmp_path / "evidence", rows, padding=3)
    triage, full = both_ways(tmp_path / "evidence", tmp_path, host="EXCH01", jobs=1)
    assert len(full.findings) >= 20
    assert summary(triage) == summary(full)
    assert full.rules["triage"]["index"] == "full"
    # until the pivot pass exists, the mailbox impact's need for every attacker row forces a full parse
    assert {f["origin"] for f in triage.rules["triage"]["full_parse"]} == {"mailbox impact"}


def test_triage_alone_selects_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the impact's full-parse need, triage stores far fewer rows and finds the same."""
    from exhunt.detections import prefilter

    monkeypatch.setattr(prefilter, "from_impact", lambda p: None)
    rows = [r for case in load_cases() for r in ((case.values[0].get("rows") or {}).get("events") or [])]
    write_case_logs(tmp_path / "evidence", rows, padding=3)
    triage, full = both_ways(tmp_path / "evidence", tmp_path, host="EXCH01", jobs=1)
    assert summary(triage) == summary(full) and triage.rules["triage"]["index"] == "triage"
    assert stored_rows(tmp_path / "triage") < stored_rows(tmp_path / "full") / 2, "triage stored the padding"


@pytest.mark.parametrize("jobs", [1, 2])
def test_demo_both_ways(tmp_path: Path, jobs: int) -> None:
    generate(tmp_path / "evidence", DemoSpec(per_day=800))
    triage, full = both_ways(tmp_path / "evidence", tmp_path, host="EXCH01", jobs=jobs, split_size=256 << 10)
    assert summary(triage) == summary(full) and len(full.findings) > 10
    t_host, f_host = triage.hosts[0], full.hosts[0]
    assert (t_host.first_seen, t_host.last_seen, t_host.build) == (f_host.first_seen, f_host.last_seen, f_host.build)
    assert t_host.coverage.events <= f_host.coverage.events
