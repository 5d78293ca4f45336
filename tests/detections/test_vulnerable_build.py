"""exposure.vulnerable_build: facts in, one finding per vulnerable host out (parametrized cases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.detections.checks import CHECKS
from exhunt.detections.checks.vulnerable_build import VulnerableBuild
from exhunt.detections.runner import run_checks
from exhunt.events.store import StoreWriter, connect
from tests.helpers import parse_bytes

# (facts as (host, fact, value, confidence, path, line), expected: None or (severity, confidence,
#  CVEs that must be listed, CVEs that must not, remediation starts with, evidence paths))
CASES = {
    "2016 CU22 from ExSetup: ProxyNotShell open -> critical": (
        [("h", "build", "15.01.2375.007", "high", "ExSetup.xml", 17)],
        ("critical", "high", {"CVE-2022-41040", "CVE-2022-41082", "CVE-2022-41080"}, {"CVE-2021-26855"},
         "Upgrade to Exchange 2016 CU23", ["ExSetup.xml"]),
    ),
    "2019 CU12 Feb23SU: only CVE-2024-21410 open -> high": (
        [("h", "build", "15.2.1118.25", "high", "log/a.log", 1)],
        ("high", "high", {"CVE-2024-21410"}, {"CVE-2022-41040", "CVE-2023-21529"}, "Upgrade", ["log/a.log"]),
    ),
    "same build spelled two ways in two files: one finding, both cited": (
        [("h", "build", "15.02.0792.010", "high", "b.log", 1),
         ("h", "build", "15.2.792.10", "high", "a.log", 5)],
        ("critical", "high", {"CVE-2021-34473"}, {"CVE-2021-26855"}, "Upgrade", ["a.log", "b.log"]),
    ),
    "older log shows an older build: the newest build is assessed": (
        [("h", "build", "15.2.792.3", "high", "old.log", 1),
         ("h", "build", "15.2.2562.17", "high", "new.log", 1)],
        None,
    ),
    "SE RTM: nothing vulnerable -> no finding": ([("h", "build", "15.2.2562.17", "high", "x.log", 1)], None),
    "CU-only OWA path: only CU-level facts count, medium confidence": (
        [("h", "owa_build", "15.1.2176", "medium", "iis/u_ex1.log", 9)],
        ("critical", "medium", {"CVE-2022-41040"}, {"CVE-2021-26855"}, "Upgrade", ["iis/u_ex1.log"]),
    ),
    "unknown build: no finding (unknown is not vulnerable)": (
        [("h", "build", "15.2.1200.3", "high", "x", 1)], None),
    "garbage fact: no finding, no crash": ([("h", "build", "banana", "high", "x", 1)], None),
}


def store_with(tmp_path: Path, rows: list[tuple]):  # type: ignore[no-untyped-def]
    writers: dict[str, StoreWriter] = {}  # the store is partitioned by host: one writer each
    for host, fact, value, confidence, path, line in rows:
        writer = writers.setdefault(host, StoreWriter(tmp_path / "store", host))
        writer.add("host_facts", {"host": host, "fact": fact, "value": value, "source": "t", "path": path,
                                  "line": line, "confidence": confidence})
    for writer in writers.values():
        writer.close()
    return connect(tmp_path / "store")


@pytest.mark.parametrize("name", list(CASES))
def test_cases(tmp_path: Path, name: str) -> None:
    rows, expected = CASES[name]
    findings = run_checks(store_with(tmp_path, rows), [VulnerableBuild()])
    if expected is None:
        assert findings == []
        return
    severity, confidence, present, absent, remediation, paths = expected
    (finding,) = findings
    assert (finding.severity, finding.confidence, finding.category) == (severity, confidence, "exposure")
    assert present <= set(finding.cves) and not absent & set(finding.cves)
    assert finding.remediation[0].startswith(remediation)
    assert sorted(e.path for e in finding.evidence) == paths
    assert all(e.line is not None for e in finding.evidence)


def test_one_finding_per_host(tmp_path: Path) -> None:
    rows = [("a", "build", "15.1.2375.7", "high", "a.log", 1),
            ("b", "build", "15.2.792.3", "high", "b.log", 1),
            ("c", "build", "15.2.2562.17", "high", "c.log", 1)]
    findings = run_checks(store_with(tmp_path, rows), [VulnerableBuild()])
    assert sorted(f.host for f in findings) == ["a", "b"]
    assert {f.host: f.title for f in findings}["b"].endswith("Exchange 2019 CU8 (15.2.792.3)")


def test_registered_and_end_to_end_from_a_log_header(tmp_path: Path) -> None:
    assert VulnerableBuild in CHECKS
    log = ("#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: HttpProxy Logs\r\n"
           "#Fields: DateTime,RequestId,UrlStem\r\n2021-03-03T00:00:00.000Z,r1,/owa/\r\n")
    con = parse_bytes(tmp_path, "Logging/HttpProxy/Owa/HttpProxy_1.LOG", log.encode())
    (finding,) = run_checks(con, [VulnerableBuild()])
    assert finding.severity == "critical" and "CVE-2021-26855" in finding.cves
    assert finding.evidence[0].path == "Logging/HttpProxy/Owa/HttpProxy_1.LOG" and finding.evidence[0].line
