from __future__ import annotations

import pytest

from exhunt.findings.model import CveStatus, HostBuild
from exhunt.probe import fingerprint as fp
from exhunt.probe.wire import TIMEOUT, Reply, RequestSpec
from tests.probe.fixture import _logon_page, _manifest

SPEC = RequestSpec("t", "/")


def reply(status: int = 200, headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> Reply:
    return Reply(SPEC, status, "OK", headers, body)


def test_header_gives_full_build_high() -> None:
    got = fp.from_header(reply(headers=(("x-owa-version", " 15.1.2176.2 "),)))
    assert got == fp.Fingerprint("15.1.2176.2", "X-OWA-Version header", "high")
    assert fp.from_header(reply(headers=(("X-OWA-Version", "15.1"),))) is None
    assert fp.from_header(Reply(SPEC, error=TIMEOUT)) is None


def test_exporttool_manifest_uses_the_application_identity_not_a_dependency() -> None:
    got = fp.from_exporttool(reply(body=_manifest("15.2.1118.25")))
    assert got is not None and got.build == "15.2.1118.25" and got.confidence == "high"
    assert fp.from_exporttool(reply(status=404, body=_manifest("15.2.1118.25"))) is None
    assert fp.from_exporttool(reply(body=b"<assemblyIdentity name=\"Other\" version=\"1.2.3.4\"/>")) is None


def test_logon_path_is_cu_only_and_says_so() -> None:
    got = fp.from_logon_paths(reply(body=_logon_page("15.1.2176")))
    assert got is not None and got.build == "15.1.2176" and got.confidence == "low" and got.cu_only
    assert "SU" in got.note
    got4 = fp.from_logon_paths(reply(body=b'<link href="/owa/14.3.496.0/themes/base/x.css">'))
    assert got4 is not None and got4.build == "14.3.496.0" and got4.confidence == "medium"


def test_best_prefers_precise_sources() -> None:
    low = fp.Fingerprint("15.1.2176", "OWA resource path", "low")
    high = fp.Fingerprint("15.1.2176.2", "ECP export tool manifest", "high")
    assert fp.best([low, None, high]) == high
    assert fp.best([None]).build is None


def test_exchange_signals() -> None:
    yes, signals = fp.looks_like_exchange([reply(headers=(("X-FEServer", "EX1"),)),
                                           reply(body=b"/owa/auth/x")])
    assert yes and signals == ("X-FEServer", "/owa/auth/")
    assert fp.looks_like_exchange([reply(headers=(("Server", "Microsoft-IIS/10.0"),))]) == (False, ())


def _fake_assess(build: str, source: str | None = None, confidence: str | None = None) -> HostBuild:
    assert build == "15.1.2176.0"  # CU-only builds are looked up at the bottom of their CU line
    return HostBuild(build=build, product="Exchange 2016", cu="CU19", update=None, source=source,
                     confidence=confidence, cves=(
                         CveStatus("CVE-2021-26855", "ProxyLogon", "vulnerable", "15.01.2176.009", "Mar21SU"),
                         CveStatus("CVE-2022-41040", "ProxyNotShell", "vulnerable", None, None),
                         CveStatus("CVE-2021-34473", "ProxyShell", "vulnerable", "15.1.2308.14", "Jul21SU"),
                         CveStatus("CVE-2020-0688", "", "fixed", "15.1.1913.7", "Feb20SU"),
                     ))


def test_cu_only_build_relaxes_su_level_cves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fp, "_assess_build", lambda: _fake_assess)
    hb = fp.host_build(fp.Fingerprint("15.1.2176", "OWA resource path", "low", "CU only"))
    assert hb is not None and hb.build == "15.1.2176" and hb.product == "Exchange 2016"
    status = {c.cve: c.status for c in hb.cves}
    assert status == {"CVE-2021-26855": "unknown",  # an SU on CU19 fixes it: cannot tell remotely
                      "CVE-2022-41040": "vulnerable",  # no fix on the CU19 line at all
                      "CVE-2021-34473": "vulnerable",  # fixed only on a later CU
                      "CVE-2020-0688": "fixed"}
    assert "SU level" in (hb.cves[0].note or "")


def test_unmapped_build_without_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fp, "_assess_build", lambda: None)
    hb = fp.host_build(fp.Fingerprint("15.1.2176.2", "X-OWA-Version header", "high"))
    assert hb == HostBuild(build="15.1.2176.2", source="probe: X-OWA-Version header", confidence="high")
    assert fp.host_build(fp.Fingerprint(None)) is None


def test_real_build_table_when_present() -> None:
    from exhunt.detections import builds

    if not hasattr(builds, "assess_build"):
        pytest.skip("exhunt.detections.builds.assess_build not merged yet")
    hb = fp.host_build(fp.Fingerprint("15.1.2176.2", "X-OWA-Version header", "high"))
    assert hb is not None and hb.product and "2016" in hb.product
    assert {c.cve: c.status for c in hb.cves}.get("CVE-2021-26855") == "vulnerable"
    cu_only = fp.host_build(fp.Fingerprint("15.1.2176", "OWA resource path", "low"))
    assert cu_only is not None
    assert {c.cve: c.status for c in cu_only.cves}.get("CVE-2021-26855") == "unknown"
