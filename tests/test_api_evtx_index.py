"""EVTX triage equals the full parse: on the shared EVTX set with exhunt's pack and the shared SigmaHQ
rules, ``--index triage`` (only chunks holding a literal some detection needs) and ``--index full``
give the same findings, per-file record counts, coverage and warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.events.store import connect
from tests.conftest import shared_path


def _findings(document) -> list[tuple]:  # type: ignore[no-untyped-def]
    return sorted((f.id, f.check, f.key, f.severity, f.confidence, f.count, f.first_seen, f.last_seen,
                   f.host) for f in document.findings)


@pytest.mark.slow
def test_triage_equals_full_on_the_shared_evtx_set(tmp_path: Path) -> None:
    evidence, rules = shared_path("evtx"), shared_path("rules", "sigma")
    results = {}
    for index in ("full", "triage"):
        options = ScanOptions(out=tmp_path / index, jobs=2, quiet=True, progress=False, sigma=[rules],
                              index=index, html_report=False)
        results[index] = scan([evidence], options)
    full, triage = results["full"], results["triage"]
    assert triage.document.rules["evtx_index"]["mode"] == "triage"
    assert full.document.rules["evtx_index"]["mode"] == "full"
    assert _findings(full.document) and _findings(triage.document) == _findings(full.document)
    assert [(r.rel, r.events, r.warnings) for r in triage.file_results] == [
        (r.rel, r.events, r.warnings) for r in full.file_results]
    for t_host, f_host in zip(triage.document.hosts, full.document.hosts, strict=True):
        assert t_host.coverage == f_host.coverage
        assert t_host.verdict == f_host.verdict
    # triage really left records out (yet counted them all above)
    stored = {i: connect(r.case_dir / "store").execute("SELECT count(*) FROM events").fetchone()[0]
              for i, r in results.items()}
    assert 0 < stored["triage"] < stored["full"] / 2
