"""Citing findings' evidence with the manifest ids: the same findings ``dataclasses.replace`` gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from exhunt.evidence import custody
from exhunt.findings.model import EvidenceRef, Finding


def _finding(n: int, paths: list[str]) -> Finding:
    refs = tuple(EvidenceRef(p, "yara", line=i or None, ts="2021-03-03T00:00:00Z", excerpt=f"x{i}")
                 for i, p in enumerate(paths))
    return Finding(f"F{n}", "yara.webshell", "t", "high", "high", "compromise", "exch01", f"k{n}", "d",
                   None, None, len(paths), ("CVE-2021-26855",), ("T1505.003",), (), ("do this",), refs,
                   {"sha256": ["ab"]})


def test_cited_findings_equal_dataclasses_replace(tmp_path: Path) -> None:
    findings = [_finding(1, ["a/1.aspx", "b/2.aspx"]), _finding(2, []), _finding(3, ["unknown.aspx"])]
    ids = {("exch01", "a/1.aspx"): "E1:000001", ("exch01", "b/2.aspx"): "E1:000002,E2"}
    cited = custody.cite_inputs(tmp_path, findings, ids)
    want = [dataclasses.replace(f, evidence=tuple(dataclasses.replace(r, input=ids.get((f.host, r.path)))
                                                  for r in f.evidence)) for f in findings]
    assert cited == want
    assert [r.input for r in cited[0].evidence] == ["E1:000001", "E1:000002,E2"]
    assert findings[0].evidence[0].input is None  # the originals are left alone
    for cls in (Finding, EvidenceRef):  # what the copy without __init__ relies on
        assert not hasattr(cls, "__post_init__") and dataclasses.is_dataclass(cls)
