"""--resume re-parses only changed files and equals a fresh scan; --fleet assesses one host per child
with cross-host pivots that render."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from exhunt.api import ScanOptions, scan
from exhunt.cli import main
from exhunt.demo import DemoSpec, generate
from exhunt.errors import EvidenceError, UsageError
from exhunt.events.store import connect
from exhunt.parallel.fleet import fleet_roots

SMALL = DemoSpec(days=1, per_day=300)
TABLES = {"events": "path, line", "warnings": "path, line, message", "host_facts": "path, fact, value",
          "files": "path", "matches": "path, rule"}


def store_rows(case: Path) -> dict[str, list]:
    con = connect(case / "store")
    return {t: con.execute(f"SELECT * FROM {t} ORDER BY {o}").fetchall() for t, o in TABLES.items()}


@pytest.mark.parametrize("jobs", [1, 2])  # 2: the resume state written beside the detections
def test_resume_reparses_only_the_changed_file(tmp_path: Path, jobs: int) -> None:
    ev = tmp_path / "exch01"
    generate(ev, SMALL)
    first = scan([ev], ScanOptions(out=tmp_path / "case", jobs=jobs, quiet=True, html_report=False))
    logs = sorted(p for p in ev.rglob("u_ex*.log"))
    assert len(first.file_results) > 5 and logs
    with logs[0].open("ab") as f:
        f.write(b"2021-03-03 23:59:59 10.0.0.5 GET /owa/auth/x.js - 443 - 192.0.2.99 curl/8 200 0 0 5\r\n")
    again = scan([ev], ScanOptions(out=tmp_path / "case", jobs=jobs, quiet=True, html_report=False, resume=True))
    assert [r.rel for r in again.file_results] == [logs[0].relative_to(ev).as_posix()]
    fresh = scan([ev], ScanOptions(out=tmp_path / "fresh", jobs=jobs, quiet=True, html_report=False))
    assert store_rows(tmp_path / "case") == store_rows(tmp_path / "fresh")  # pivot rows redone, none twice
    assert again.document.rules["triage"]["pivot"]["rows"] > 0
    assert again.document.impact == fresh.document.impact
    assert [f.id for f in again.document.findings] == [f.id for f in fresh.document.findings]
    assert again.document.hosts[0].coverage == fresh.document.hosts[0].coverage
    nothing = scan([ev], ScanOptions(out=tmp_path / "case", jobs=jobs, quiet=True, html_report=False, resume=True))
    assert nothing.file_results == []
    assert store_rows(tmp_path / "case") == store_rows(tmp_path / "fresh")


def test_fleet_one_host_per_child_with_pivots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = tmp_path / "fleet"
    for host in ("exch01", "exch02"):
        generate(fleet / host, SMALL)  # same seed: same attacker IP and web shell on both
    (fleet / "notes.txt").write_text("not a host")
    assert [p.name for p in fleet_roots(fleet)] == ["exch01", "exch02"]
    code = main(["scan", "--fleet", str(fleet), "--out", str(tmp_path / "case"), "--json", "--quiet",
                 "--jobs", "2"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [h["host"] for h in doc["hosts"]] == ["exch01", "exch02"]
    pivots = [f for f in doc["findings"] if f["check"] == "fleet-pivot"]
    assert pivots and all(f["host"] == "exch01,exch02" for f in pivots)
    assert {f["key"].split("=")[0] for f in pivots} >= {"client_ip", "sha256"}
    for f in pivots:
        assert sorted(e["excerpt"].split(":")[0] for e in f["evidence"]) == ["exch01", "exch02"]
    html = (tmp_path / "case" / "report.html").read_text(encoding="utf-8")
    assert "Same attacker indicator on several servers" in html and "exch01,exch02" in html
    findings = orjson.loads((tmp_path / "case" / "findings.json").read_bytes())["findings"]
    assert len(findings) == len(doc["findings"])
    # each host's cited row under its own host: the rows had merged into one of a made-up host
    # "exch01,exch02" in every timeline, and the pivot findings counted for no host
    from exhunt.events.store import connect
    from exhunt.findings.document import load_document
    from exhunt.reports.actions import host_findings

    cited = connect(tmp_path / "case" / "store", extra_tables=("hits",)).execute(
        "SELECT host, count(*) FROM hits WHERE finding_id LIKE 'fleet-pivot:%' GROUP BY host ORDER BY host").fetchall()
    assert [host for host, _ in cited] == ["exch01", "exch02"]
    assert sum(n for _, n in cited) == sum(f["count"] for f in pivots)
    document = load_document(tmp_path / "case")
    for host in ("exch01", "exch02"):
        assert {f.id for f in host_findings(document, host)} >= {f["id"] for f in pivots}
    # the same rows read from findings.json alone: each host's, each finding cited once
    from exhunt.reports.case import Case, cited_events

    store_rows = [c for c in cited_events(Case(document, tmp_path / "case" / "store"))]
    doc_rows = [c for c in cited_events(Case(document, None))]
    for rows in (store_rows, doc_rows):
        pivot_rows = [c for c in rows if any(i.startswith("fleet-pivot:") for i in c.finding_ids)]
        assert {c.host for c in pivot_rows} == {"exch01", "exch02"}
        assert all(len(set(c.finding_ids)) == len(c.finding_ids) for c in rows)


def test_fleet_rejects_host_name_clashes(tmp_path: Path) -> None:
    (tmp_path / "exch01").mkdir()
    (tmp_path / "exch01.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    with pytest.raises(UsageError):
        fleet_roots(tmp_path)


@pytest.mark.parametrize("index", ["triage", "full"])
def test_fleet_attacker_ip_seen_on_another_host_is_not_clean(tmp_path: Path, index: str) -> None:
    from exhunt.demo import ATTACKER_IP

    fleet = tmp_path / "fleet"
    generate(fleet / "exch01", SMALL)  # the attack: ProxyLogon, web shell, mail read from ATTACKER_IP
    generate(fleet / "exch02", DemoSpec(days=1, per_day=300, attack=False, seed=7))
    log = sorted((fleet / "exch02").rglob("u_ex*.log"))[0]
    with log.open("ab") as f:  # the same address signs in to OWA on exch02; no detection selects these lines
        f.write(f"2021-03-01 23:59:01 10.10.1.21 GET /owa/ - 443 - {ATTACKER_IP} Mozilla/5.0 - 200 0 0 12\r\n"
                f"2021-03-01 23:59:05 10.10.1.21 POST /owa/auth.owa - 443 CORP\\alice {ATTACKER_IP} Mozilla/5.0 - "
                "302 0 0 12\r\n".encode())
    result = scan(fleet_roots(fleet), ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False,
                                                  index=index))
    hosts = {h.host: h.verdict for h in result.document.hosts}
    assert hosts["exch01"] == "compromised"
    stored = connect(tmp_path / "case" / "store").execute(
        "SELECT count(*) FROM events WHERE host = 'exch02' AND client_ip = ?", [ATTACKER_IP]).fetchone()
    assert stored == (2,)  # read and stored (triage: by the pivot pass) ...
    on_exch02 = [f for f in result.document.findings if "exch02" in f.host.split(",")
                 and ATTACKER_IP in f.indicators.get("client_ip", ())]
    assert on_exch02, "... yet no finding of exch02 names the attacker's address"
    assert hosts["exch02"] == "suspicious"  # a request alone does not show that it succeeded
    (reach,) = on_exch02
    assert (reach.check, reach.host, reach.count) == ("fleet-attacker-address", "exch02", 2)
    assert {r.line for r in reach.evidence} == {n + 1 for n in range(len(log.read_bytes().splitlines()))[-2:]}
    assert all(r.input for r in reach.evidence)  # cited with the manifest's input ids


@pytest.mark.parametrize("index", ["triage", "full"])
def test_fleet_attacker_ip_logged_ipv4_mapped_on_another_host_is_the_same_address(tmp_path: Path,
                                                                                  index: str) -> None:
    """A dual-stack server logs the IPv4 client as ::ffff:a.b.c.d (the IOC matching reads it so): it is
    the other host's attacker address all the same (it had been called clean)."""
    from exhunt.demo import ATTACKER_IP

    fleet = tmp_path / "fleet"
    generate(fleet / "exch01", SMALL)
    generate(fleet / "exch02", DemoSpec(days=1, per_day=300, attack=False, seed=7))
    log = sorted((fleet / "exch02").rglob("u_ex*.log"))[0]
    with log.open("ab") as f:
        f.write(f"2021-03-01 23:59:01 10.10.1.21 GET /owa/ - 443 - ::ffff:{ATTACKER_IP} Mozilla/5.0 - 200 0 0 12\r\n"
                .encode())
    result = scan(fleet_roots(fleet), ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False,
                                                  index=index))
    assert {h.host: h.verdict for h in result.document.hosts} == {"exch01": "compromised", "exch02": "suspicious"}
    (reach,) = [f for f in result.document.findings if f.check == "fleet-attacker-address"]
    assert (reach.host, reach.count, reach.indicators) == ("exch02", 1, {"client_ip": [ATTACKER_IP]})


def test_a_damaged_archive_in_a_fleet_is_one_unread_host_not_the_end_of_the_scan(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet"
    generate(fleet / "exch01", DemoSpec(days=1, per_day=100, attack=False, seed=3))
    (fleet / "exch02.zip").write_bytes(b"\x00" * 600 + b"PK\x03\x04 cut short")  # no archive signature first
    result = scan(fleet_roots(fleet), ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False))
    hosts = {h.host: h.verdict for h in result.document.hosts}
    assert hosts == {"exch01": "clean", "exch02": "not assessed"}
    (warning,) = connect(tmp_path / "case" / "store").execute(
        "SELECT message FROM warnings WHERE host = 'exch02'").fetchone()
    assert "damaged archive" in warning and "exch02.zip" in warning
    with pytest.raises(EvidenceError, match="damaged archive"):  # given alone it is still a usage error
        scan([fleet / "exch02.zip"], ScanOptions(out=tmp_path / "alone", jobs=1, quiet=True, html_report=False))
