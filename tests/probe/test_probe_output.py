"""JSON lines streaming/resume and the findings document built from probe results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from exhunt.findings.document import load_document, save_document
from exhunt.probe import output
from exhunt.probe.fingerprint import Fingerprint, host_build


def result(target: str, *verdicts: str, build: str | None = None) -> dict[str, Any]:
    checks = ["probe.proxylogon_ssrf", "probe.proxyshell_path", "probe.proxynotshell_mitigation"]
    hb = host_build(Fingerprint(build, "X-OWA-Version header", "high")) if build else None
    from dataclasses import asdict

    return {
        "target": target, "reachable": True, "error": None, "exchange": True, "signals": ["X-FEServer"],
        "started": "2026-01-01T00:00:00Z", "elapsed": 0.1,
        "fingerprint": {"build": build, "source": "X-OWA-Version header", "confidence": "high",
                        "note": "",
                        "replies": [{"request": "owa-logon",
                                     "evidence": "GET /owa/auth/logon.aspx HTTP/1.1\n->"
                                                 "\nHTTP/1.1 200 OK\nX-OWA-Version: " + str(build)}]},
        "build": asdict(hb) if hb else None,
        "checks": [{"check": c, "verdict": v, "reason": f"because {v}",
                    "replies": [{"request": c, "evidence": f"GET /x HTTP/1.1\n->\nHTTP/1.1 500 ({c})"}]}
                   for c, v in zip(checks, verdicts, strict=True)],
    }


def test_resume_keeps_complete_lines_and_cuts_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "probe.jsonl"
    with output.JsonlWriter(path) as w:
        w.write(result("https://a", "unknown", "unknown", "unknown"))
        w.write(result("https://b", "unknown", "unknown", "unknown"))
    with path.open("ab") as fh:
        fh.write(b'{"target": "https://c", "reach')  # killed mid-write
    done, offset = output.load_results(path)
    assert [r["target"] for r in done] == ["https://a", "https://b"]
    with output.JsonlWriter(path, resume_from=offset) as w:
        w.write(result("https://c", "unknown", "unknown", "unknown"))
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(x)["target"] for x in lines] == ["https://a", "https://b", "https://c"]
    assert output.load_results(tmp_path / "missing.jsonl") == ([], 0)


def test_fresh_run_truncates(tmp_path: Path) -> None:
    path = tmp_path / "probe.jsonl"
    path.write_text("old\n", encoding="utf-8")
    with output.JsonlWriter(path) as w:
        w.write(result("https://a", "unknown", "unknown", "unknown"))
    assert len(path.read_bytes().splitlines()) == 1


def test_document_findings_evidence_and_round_trip(tmp_path: Path) -> None:
    results = [
        result("https://vuln", "vulnerable", "vulnerable", "vulnerable", build="15.1.2176.2"),
        result("https://ok", "not vulnerable", "not vulnerable", "not vulnerable", build="15.2.1118.25"),
        result("https://down", "unknown", "unknown", "unknown"),
    ]
    doc = output.document(results)
    assert [h.host for h in doc.hosts] == ["https://down", "https://ok", "https://vuln"]
    assert {h.host: (h.build.product if h.build else None) for h in doc.hosts} == {
        "https://down": None, "https://ok": "Exchange 2019", "https://vuln": "Exchange 2016"}
    by_check = {f.check: f for f in doc.findings if f.host == "https://vuln"}
    assert set(by_check) == {"probe.proxylogon_ssrf", "probe.proxyshell_path",
                             "probe.proxynotshell_mitigation", output.BUILD_CHECK}
    # 2019 CU12 Feb23SU has every ProxyLogon/ProxyShell/ProxyNotShell fix; the build table still lists
    # CVE-2024-21410 (fixed only from CU14) against it, as a build finding, never a check finding
    (ok,) = [f for f in doc.findings if f.host == "https://ok"]
    assert ok.check == output.BUILD_CHECK
    assert "CVE-2021-26855" not in ok.cves and "CVE-2022-41040" not in ok.cves
    assert not [f for f in doc.findings if f.host == "https://down"]
    pl = by_check["probe.proxylogon_ssrf"]
    assert pl.category == "exposure" and pl.severity == "critical" and pl.cves == ("CVE-2021-26855",)
    assert pl.evidence[0].excerpt.startswith("GET /x HTTP/1.1") and "HTTP/1.1 500" in pl.evidence[0].excerpt
    assert pl.indicators == {"reason": ["because vulnerable"]}
    build_finding = by_check[output.BUILD_CHECK]
    assert "CVE-2021-26855" in build_finding.cves and build_finding.confidence == "high"
    assert "X-OWA-Version" in build_finding.evidence[0].excerpt
    summary = doc.rules["probe"]
    assert summary["targets"] == 3 and summary["verdicts"]["probe.proxylogon_ssrf"] == {
        "not vulnerable": 1, "unknown": 1, "vulnerable": 1}
    assert {"target": "https://down", "check": "probe.proxyshell_path", "verdict": "unknown",
            "reason": "because unknown"} in summary["results"]
    save_document(tmp_path, doc)
    assert load_document(tmp_path) == doc
