"""assess_build / assess_host against the bundled tables (data-driven tables of expected statuses)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.detections.builds import assess_build, assess_file, assess_host, best_build_fact
from exhunt.findings.model import HostBuild
from tests.conftest import shared_path
from tests.helpers import parse_paths

PROXYLOGON = ("CVE-2021-26855", "CVE-2021-26857", "CVE-2021-26858", "CVE-2021-27065")
PROXYSHELL = ("CVE-2021-34473", "CVE-2021-34523", "CVE-2021-31207")
PROXYNOTSHELL_OWASSRF = ("CVE-2022-41040", "CVE-2022-41082", "CVE-2022-41080")


def statuses(hb: HostBuild) -> dict[str, str]:
    return {c.cve: c.status for c in hb.cves}


def expect(hb: HostBuild, status: str, cves: tuple[str, ...]) -> None:
    got = statuses(hb)
    assert {c: got[c] for c in cves} == dict.fromkeys(cves, status)


# (build text, product, cu, update, status per CVE group, install starts with)
CASES = [
    ("15.01.2375.007", "Exchange 2016", "CU22", "no SU (base build of the CU)",
     {"fixed": PROXYLOGON + PROXYSHELL, "vulnerable": PROXYNOTSHELL_OWASSRF},
     "Upgrade to Exchange 2016 CU23"),
    ("15.02.0986.005", "Exchange 2019", "CU11", "no SU (base build of the CU)",
     {"fixed": PROXYLOGON + PROXYSHELL, "vulnerable": PROXYNOTSHELL_OWASSRF},
     "Upgrade to Exchange 2019 CU15"),
    ("15.02.1118.025", "Exchange 2019", "CU12", "Feb23SU",
     {"fixed": PROXYLOGON + PROXYSHELL + PROXYNOTSHELL_OWASSRF + ("CVE-2023-21529",),
      "vulnerable": ("CVE-2024-21410",)}, "Upgrade to Exchange 2019 CU15"),
    ("15.2.792.3", "Exchange 2019", "CU8", "no SU (base build of the CU)",
     {"vulnerable": PROXYLOGON + PROXYSHELL}, "Upgrade"),
    ("15.2.792.10", "Exchange 2019", "CU8", "Mar21SU",
     {"fixed": PROXYLOGON, "vulnerable": PROXYSHELL}, "Upgrade"),
    # unknown revision on a known line: decided numerically (SUs are cumulative), labelled as unknown
    ("15.2.1118.22", "Exchange 2019", "CU12", "unknown revision 22 (after Jan23SU)",
     {"fixed": PROXYNOTSHELL_OWASSRF, "vulnerable": ("CVE-2023-21529",)}, "Upgrade"),
    # CU-only (OWA resource path): SU-dependent CVEs are unknown, CU-level facts still decide
    ("15.2.1118", "Exchange 2019", "CU12", "unknown (CU-level build)",
     {"fixed": PROXYLOGON + PROXYSHELL, "unknown": PROXYNOTSHELL_OWASSRF + ("CVE-2023-21529",),
      "vulnerable": ("CVE-2024-21410",)}, "Upgrade"),
    ("Version 15.2 (Build 986.5)", "Exchange 2019", "CU11",
     "unknown (AdminDisplayVersion shows the CU only, not the SU)",
     {"fixed": PROXYLOGON + PROXYSHELL, "unknown": PROXYNOTSHELL_OWASSRF}, "Upgrade"),
    # special March 2021 ProxyLogon-only SU is not cumulative: the earlier Feb20SU fix is unknown
    ("15.1.1847.12", "Exchange 2016", "CU14", "Mar21SU",
     {"fixed": PROXYLOGON, "unknown": ("CVE-2020-0688",), "vulnerable": PROXYSHELL}, "Upgrade"),
    # CU older than every line in the table: out of support, no fix
    ("15.0.1156.6", "Exchange 2013", "older CU (out of support, not in the table)", None,
     {"vulnerable": PROXYLOGON + PROXYSHELL, "fixed": ("CVE-2021-42321",)}, "Upgrade to Exchange 2013 CU23"),
    ("15.0.847.64", "Exchange 2013", "SP1", "Mar21SU", {"fixed": PROXYLOGON, "vulnerable": PROXYSHELL},
     "Upgrade"),
    # between known lines: unknown build, nearest line named
    ("15.2.1200.3", "Exchange 2019", "unknown: nearest known line Exchange 2019 CU13 (15.2.1258.12)", None,
     {"unknown": PROXYLOGON + PROXYSHELL + PROXYNOTSHELL_OWASSRF}, "Unknown build 15.2.1200.3"),
    ("15.2.2562.17", "Exchange SE", "RTM", "no SU (base build of the CU)",
     {"fixed": PROXYLOGON + PROXYSHELL + PROXYNOTSHELL_OWASSRF + ("CVE-2024-21410",)}, None),
    ("15.2.1258.12", "Exchange 2019", "CU13", "no SU (base build of the CU)",
     {"fixed": PROXYNOTSHELL_OWASSRF, "unknown": ("CVE-2024-21410",)}, "Make sure Extended Protection"),
    ("14.3.513.0", "Exchange 2010", "SP3", "RU32",
     {"fixed": ("CVE-2021-26857", "CVE-2020-0688", "CVE-2020-17144"), "unknown": ("CVE-2021-26855",)},
     "Exchange 2010 is out of support"),
    ("14.3.496.0", "Exchange 2010", "SP3", "RU30",
     {"fixed": ("CVE-2020-0688",), "vulnerable": ("CVE-2021-26857", "CVE-2020-17144")}, "Exchange 2010"),
    ("8.1.240.6", None, None, None, {"unknown": PROXYLOGON}, None),
    # the product's last CU and update: no upgrade exists for what no update fixes
    ("15.0.1497.48", "Exchange 2013", "CU23", "Mar23SU", {"vulnerable": ("CVE-2024-21410",)},
     "No update of Exchange 2013 fixes CVE-2024-21410"),
]


@pytest.mark.parametrize(("text", "product", "cu", "update", "groups", "install"), CASES,
                         ids=[c[0] for c in CASES])
def test_assess_build(text: str, product: str | None, cu: str | None, update: str | None,
                      groups: dict[str, tuple[str, ...]], install: str | None) -> None:
    hb = assess_build(text, "test", "high")
    assert (hb.product, hb.cu, hb.update) == (product, cu, update)
    assert len(hb.cves) == 17 and {c.status for c in hb.cves} <= {"vulnerable", "fixed", "unknown"}
    for status, cves in groups.items():
        expect(hb, status, cves)
    assert (hb.install or "").startswith(install or "") and (install is not None) == (hb.install is not None)
    assert (hb.source, hb.confidence) == ("test", "high")


def test_fixable_on_its_own_cu_names_the_su_to_install() -> None:
    hb = assess_build("15.2.1118.7")  # 2019 CU12 base; CVE-2024-21410 needs a CU upgrade anyway
    nov22 = next(c for c in hb.cves if c.cve == "CVE-2022-41040")
    assert (nov22.status, nov22.fixed_in, nov22.update) == ("vulnerable", "15.2.1118.20",
                                                            "Exchange Server 2019 CU12 Nov22SU")


def test_install_names_the_highest_su_when_the_cu_suffices() -> None:
    hb = assess_build("15.2.1258.12")  # 2019 CU13: only Extended Protection is left
    assert hb.install == "Make sure Extended Protection is enabled (CVE-2024-21410)"
    hb = assess_build("15.1.2507.6")  # 2016 CU23 base: every SU-fixed CVE is open on this line
    assert hb.install is not None and hb.install.startswith("Install Exchange Server 2016 CU23")
    assert hb.install.endswith("or later")


def test_cu_only_install_asks_to_check_the_su() -> None:
    hb = assess_build("15.1.2507")
    assert hb.install is not None and hb.install.startswith("Make sure Exchange Server 2016 CU23")
    assert "ExSetup.exe" in hb.install


FIXTURES = [  # (file, build, statuses as stated in ../shared/data/README.md)
    ("E16/ExSetup.xml", "15.1.2375.7", "vulnerable"),
    ("E19/ExSetup.xml", "15.2.986.5", "vulnerable"),
    ("E19/ExSetup1.xml", "15.2.1118.25", "fixed"),
    # AdminDisplayVersion shows the CU only: SU-fixed CVEs cannot be decided, never called fixed
    ("E16/GetExchangeServer.xml", "15.1.2375", "unknown"),
    ("E19/GetExchangeServer.xml", "15.2.986", "unknown"),
]


@pytest.mark.parametrize(("name", "build", "notshell"), FIXTURES, ids=[f[0] for f in FIXTURES])
def test_healthchecker_fixtures(name: str, build: str, notshell: str) -> None:
    hb = assess_file(shared_path("css-exchange", "healthchecker-testdata", name))
    assert hb.build == build
    expect(hb, "fixed", PROXYLOGON + PROXYSHELL)
    expect(hb, notshell, PROXYNOTSHELL_OWASSRF)
    assert hb.confidence == ("medium" if "GetExchangeServer" in name else "high")


def _facts_store(tmp_path: Path, facts: list[tuple[str, str, str, str, int]]):  # type: ignore[no-untyped-def]
    from exhunt.events.store import StoreWriter, connect

    store = tmp_path / "store"
    writer = StoreWriter(store, "h")
    for fact, value, confidence, path, line in facts:
        writer.add("host_facts", {"host": "h", "fact": fact, "value": value, "source": "x", "path": path,
                                  "line": line, "confidence": confidence})
    writer.close()
    return connect(store)


def test_assess_host_normalizes_and_prefers_confident_full_highest_builds(tmp_path: Path) -> None:
    con = _facts_store(tmp_path, [
        ("owa_build", "15.2.1258", "medium", "iis/u_ex1.log", 3),
        ("build", "15.02.0986.005", "high", "a.log", 1),
        ("build", "15.2.986.5", "high", "b.log", 2),
        ("build", "15.2.986.36", "high", "c.log", 4),
        ("build", "not a build", "high", "d.log", 5),
    ])
    assert best_build_fact(con, "h") == ("15.2.986.36", "x", "high")
    hb = assess_host(con, "h")
    assert hb is not None and (hb.build, hb.cu, hb.update) == ("15.2.986.36", "CU11", "Nov22SU")
    assert assess_host(con, "other") is None


def test_a_newer_cu_seen_only_as_a_cu_beats_a_full_build_of_an_older_cu(tmp_path: Path) -> None:
    """A server upgraded from 2016 CU19 to CU22 during the logs: the verdict is about CU22, not the
    CU19 SU the server no longer runs (whose update cannot be installed on CU22)."""
    con = _facts_store(tmp_path, [
        ("owa_build", "15.1.2176.9", "medium", "iis/u_ex1.log", 3),
        ("owa_build", "15.1.2375", "medium", "iis/u_ex2.log", 5),
        ("owa_build", "15.1.2375.7", "medium", "iis/u_ex3.log", 7),
        ("owa_build", "15.1.2375", "medium", "iis/u_ex3.log", 9),
    ])
    assert best_build_fact(con, "h") == ("15.1.2375.7", "x", "medium")  # within a CU: the full build
    con = _facts_store(tmp_path / "cu-only", [("owa_build", "15.1.2176.9", "medium", "iis/u_ex1.log", 3),
                                              ("owa_build", "15.1.2375", "medium", "iis/u_ex2.log", 5)])
    hb = assess_host(con, "h")
    assert hb is not None and (hb.build, hb.cu) == ("15.1.2375", "CU22")
    expect(hb, "fixed", PROXYSHELL)


def test_an_org_export_is_assessed_server_by_server(tmp_path: Path) -> None:
    """Get-ExchangeServer of an organisation: the 2016 CU22 server beside a 2019 CU14 one was
    dropped, and the file came out with nothing vulnerable."""
    from exhunt.detections.builds import assess_file_all

    export = tmp_path / "GetExchangeServer.xml"
    export.write_text(
        '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        + "".join(f'<Obj RefId="{n}"><Props><S N="Name">{name}</S><S N="AdminDisplayVersion">{version}</S>'
                  "</Props></Obj>" for n, (name, version) in enumerate(
                      (("EX2016", "Version 15.1 (Build 2375.7)"), ("EX2019", "Version 15.2 (Build 1544.4)"))))
        + "</Objs>", encoding="utf-8")
    assessed = assess_file_all(export)
    assert [hb.cu for hb in assessed] == ["CU14", "CU22"]  # the highest first, then the others
    assert assess_file(export) == assessed[0]
    assert any(c.status == "vulnerable" for c in assessed[1].cves)


def test_assess_host_falls_back_to_owa_paths(tmp_path: Path) -> None:
    con = _facts_store(tmp_path, [("owa_build", "15.1.2176", "medium", "iis/u_ex1.log", 3)])
    hb = assess_host(con, "h")
    assert hb is not None and (hb.build, hb.cu, hb.confidence) == ("15.1.2176", "CU19", "medium")
    expect(hb, "unknown", PROXYLOGON)


def test_assess_host_from_parsed_clixml(tmp_path: Path) -> None:
    root = shared_path("css-exchange", "healthchecker-testdata")
    con = parse_paths(tmp_path, root, ["E16/ExSetup.xml", "E16/GetExchangeServer.xml"])
    hb = assess_host(con, "h")
    assert hb is not None and (hb.build, hb.confidence) == ("15.1.2375.7", "high")


def _released() -> list:  # type: ignore[type-arg]
    from exhunt.detections.buildtable import build_rows

    return [r for r in build_rows() if r.product != "Exchange 2010"]


def test_every_released_build_is_decided_except_for_documented_reasons() -> None:
    """Every 2013+ build in the table gets vulnerable/fixed, unless EP or a non-cumulative SU decides."""
    for row in _released():
        hb = assess_build(str(row.build))
        assert (hb.product, hb.cu) == (row.product, row.cu_line), row.name
        for c in hb.cves:
            if c.status == "unknown":
                reason = c.note or ""
                assert "Extended Protection" in reason or "not cumulative" in reason, (row.name, c)


def test_each_fix_build_flips_its_cve_from_vulnerable_to_fixed() -> None:
    from exhunt.detections.buildtable import cve_rows

    for fix in (r for r in cve_rows() if r.status == "fixed_by_update" and r.product != "Exchange 2010"):
        assert fix.fixed_in is not None
        line = sorted(r.build for r in _released() if r.product == fix.product and r.cu_line == fix.cu_line)
        before = [b for b in line if b < fix.fixed_in]
        assert statuses(assess_build(str(fix.fixed_in)))[fix.cve] == "fixed", fix
        assert statuses(assess_build(str(before[-1])))[fix.cve] == "vulnerable", fix


IIS_HEADER = ("#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n"
              "#Date: 2022-11-20 00:00:00\r\n"
              "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
              "sc-status sc-substatus sc-win32-status time-taken\r\n")


@pytest.mark.parametrize("index", ["triage", "full"])
@pytest.mark.parametrize(("status", "build"), [("302", "15.1.2375"), ("404", "15.1.2375"), ("200", "15.1.2507.16"),
                                               ("304", "15.1.2507.16")])
def test_a_build_in_a_path_counts_only_where_the_server_served_it(tmp_path: Path, index: str, status: str,
                                                                 build: str) -> None:
    """A client can ask for any version path: an unauthenticated OWA request is redirected to the
    logon page (302) and a made-up version folder is 404. One such request named a newer SU than the
    server runs, and ProxyNotShell came out fixed."""
    from exhunt.api import ScanOptions, scan

    real = "".join(f"2022-11-20 08:{m:02d}:00 10.0.0.5 GET /owa/auth/15.1.2375/themes/resources/favicon.ico - 443 - "
                   f"10.0.0.{20 + m} Mozilla/5.0 200 0 0 5\r\n" for m in range(50))
    asked = (f"2022-11-20 09:00:00 10.0.0.5 GET /owa/15.1.2507.16/scripts/boot.js - 443 - 198.51.100.9 curl/8 "
             f"{status} 0 0 5\r\n")
    log = tmp_path / "evidence" / "inetpub" / "logs" / "LogFiles" / "W3SVC1" / "u_ex221120.log"
    log.parent.mkdir(parents=True)
    log.write_text(IIS_HEADER + real + asked, encoding="ascii")
    doc = scan([tmp_path / "evidence"], ScanOptions(out=tmp_path / "case", host="EX1", jobs=1, quiet=True,
                                                    progress=False, index=index, html_report=False)).document
    assert doc.hosts[0].build is not None and doc.hosts[0].build.build == build
