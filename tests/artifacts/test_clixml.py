"""CLIXML build sources: ExSetup FileVersion (exact), AdminDisplayVersion (CU only), hostile XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.artifacts import choose
from exhunt.artifacts.clixml import CliXml
from tests.conftest import shared_path
from tests.helpers import parse_bytes, parse_paths

NS = 'xmlns="http://schemas.microsoft.com/powershell/2004/04"'
EXSETUP = f"""<Objs Version="1.1.0.1" {NS}>
  <Obj RefId="0">
    <TN RefId="0"><T>System.Diagnostics.FileVersionInfo</T><T>System.Object</T></TN>
    <Props>
      <S N="FileName">C:\\Program Files\\Microsoft\\Exchange Server\\V15\\bin\\ExSetup.exe</S>
      <S N="FileVersion">{{version}}</S>
      <S N="ProductVersion">{{version}}</S>
    </Props>
  </Obj>
</Objs>
"""
SERVER = """  <Obj RefId="{ref}">
    <TN RefId="1"><T>Microsoft.Exchange.Data.Directory.Management.ExchangeServer</T></TN>
    <Props>
      <S N="Name">{name}</S>
      <S N="Fqdn">{name}.corp.local</S>
      <Obj N="AdminDisplayVersion" RefId="9">
        <ToString>Version {version}</ToString>
        <Props><I32 N="Major">15</I32><I32 N="Minor">2</I32></Props>
      </Obj>
    </Props>
  </Obj>
"""


def servers(*entries: tuple[str, str]) -> str:
    body = "".join(SERVER.format(ref=i, name=n, version=v) for i, (n, v) in enumerate(entries))
    return f"<Objs Version=\"1.1.0.1\" {NS}>\n{body}</Objs>\n"


def facts(con) -> list[tuple]:  # type: ignore[no-untyped-def]
    sql = "SELECT fact, value, line, confidence, source FROM host_facts ORDER BY value"
    return con.execute(sql).fetchall()


def warnings(con) -> list[str]:  # type: ignore[no-untyped-def]
    return [m for (m,) in con.execute("SELECT message FROM warnings").fetchall()]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-8"])
def test_exsetup_file_version_is_an_exact_build(tmp_path: Path, encoding: str) -> None:
    data = EXSETUP.format(version="15.02.1118.025").encode(encoding)
    con = parse_bytes(tmp_path, "collect/srv1/anything.bin", data)
    assert facts(con) == [("build", "15.02.1118.025", 6, "high", "clixml")]
    assert warnings(con) == []


def test_admin_display_version_is_cu_level(tmp_path: Path) -> None:
    con = parse_bytes(tmp_path, "GetExchangeServer.xml", servers(("EXCH1", "15.2 (Build 986.5)")).encode())
    assert facts(con) == [("build", "15.2.986", 8, "medium", "clixml")]


def test_admin_display_version_without_its_text_is_read_from_its_numbers(tmp_path: Path) -> None:
    data = servers(("EXCH1", "x")).replace("<ToString>Version x</ToString>", "")
    data = data.replace('<I32 N="Minor">2</I32>', '<I32 N="Minor">2</I32><I32 N="Build">1118</I32>')
    con = parse_bytes(tmp_path, "GetExchangeServer.xml", data.encode())
    assert facts(con) == [("build", "15.2.1118", 7, "medium", "clixml")]


def test_org_wide_export_keeps_only_the_host(tmp_path: Path) -> None:
    data = servers(("EXCH1", "15.2 (Build 986.5)"), ("EXCH2", "15.2 (Build 1118.7)")).encode()
    con = parse_bytes(tmp_path, "GetExchangeServer.xml", data, host="exch2")
    assert [v for _, v, *_ in facts(con)] == ["15.2.1118"]
    con = parse_bytes(tmp_path / "b", "GetExchangeServer.xml", data, host="other")
    assert facts(con) == [] and "none named 'other'" in warnings(con)[0]


def test_non_exsetup_file_version_is_not_a_build(tmp_path: Path) -> None:
    data = EXSETUP.format(version="15.2.1118.25").replace("ExSetup.exe", "notepad.exe").encode()
    con = parse_bytes(tmp_path, "x.xml", data)
    assert facts(con) == [] and "without an Exchange build" in warnings(con)[0]


def test_dtd_and_entities_are_refused(tmp_path: Path) -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE Objs [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">'
            '<!ENTITY ext SYSTEM "file:///etc/passwd">]>\n'
            + EXSETUP.format(version="&b;&ext;"))
    con = parse_bytes(tmp_path, "ExSetup.xml", bomb.encode())
    assert facts(con) == []
    assert any("document type declaration refused" in w for w in warnings(con))


def test_truncated_clixml_is_a_warning_with_position(tmp_path: Path) -> None:
    data = EXSETUP.format(version="15.2.1118.25").encode()[:-40]
    con = parse_bytes(tmp_path, "ExSetup.xml", data)
    assert facts(con) == [("build", "15.2.1118.25", 6, "high", "clixml")]  # found before the cut
    rows = con.execute("SELECT message, line FROM warnings").fetchall()
    assert "CLIXML cut off or malformed" in rows[0][0] and rows[0][1] is not None


@pytest.mark.parametrize(("head", "claimed"), [
    (EXSETUP.format(version="1").encode("utf-8-sig"), True),
    (EXSETUP.format(version="1").encode("utf-16-le"), True),
    (b'<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><Obj><S>x</S>', False),
    (b'<?xml version="1.0"?><configuration><system.webServer/>', False),
    (b"ExSetup.exe FileVersion 15.2.1118.25", False),
])
def test_claimed_by_content(head: bytes, claimed: bool) -> None:
    assert CliXml.claims("whatever.txt", head) is claimed


def test_application_host_config_is_not_a_build_source(tmp_path: Path) -> None:
    root = shared_path("css-exchange", "iis-config")
    rels = sorted(p.name for p in root.iterdir())
    con = parse_paths(tmp_path, root, rels)
    assert facts(con) == []
    assert all(choose(r.lower(), (root / r).read_bytes()[:4096]) is not CliXml for r in rels)


def test_healthchecker_fixtures(tmp_path: Path) -> None:
    root = shared_path("css-exchange", "healthchecker-testdata")
    rels = sorted(str(p.relative_to(root)) for p in root.rglob("*.xml"))
    con = parse_paths(tmp_path, root, rels, host="solo-e19a")
    got = con.execute("SELECT path, value, confidence FROM host_facts ORDER BY path").fetchall()
    assert got == [
        ("E16/ExSetup.xml", "15.01.2375.007", "high"),
        ("E16/GetExchangeServer.xml", "15.1.2375", "medium"),
        ("E19/ExSetup.xml", "15.02.0986.005", "high"),
        ("E19/ExSetup1.xml", "15.02.1118.025", "high"),
        ("E19/GetExchangeServer.xml", "15.2.986", "medium"),
    ]
    # the build exports are read without a warning; other cmdlet exports no artifact reads are named
    problems = con.execute("SELECT path, artifact, message FROM warnings ORDER BY path").fetchall()
    assert {p for p, _, _ in problems}.isdisjoint({path for path, _, _ in got})
    assert all(a == "unrecognised" and m.startswith("PowerShell CLIXML of ") for _, a, m in problems)
