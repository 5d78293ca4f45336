"""The demo collection: every planted ProxyLogon step is found; nothing benign is flagged."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.demo.attack import (
    ATTACKER_IP,
    EXFILTRATED,
    LSASS_DUMP_PATH,
    OAB_EXPORT_PATH,
    PLANTED,
    SHELL_PATH,
    STAGED_ARCHIVE_PATH,
)


@pytest.fixture(scope="module")
def demo_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("demo")
    generate(root / "evidence", DemoSpec(per_day=1500))
    result = scan([root / "evidence"], ScanOptions(out=root / "case", host="EXCH01", jobs=2, quiet=True))
    return root, result.document


@pytest.mark.parametrize(("step", "check"), PLANTED, ids=[c for _, c in PLANTED])
def test_each_planted_step_is_found(demo_case: tuple[Path, object], step: str, check: str) -> None:
    _, doc = demo_case
    hits = [f for f in doc.findings if f.check == check and f.confidence == "high"]  # type: ignore[attr-defined]
    assert hits, f"planted step not found: {step}"
    assert all(f.first_seen and f.first_seen.startswith("2021-03-03") for f in hits)


def test_nothing_benign_is_flagged(demo_case: tuple[Path, object]) -> None:
    """Every compromise finding is a planted step: a planted check, or a rule hit on a planted file."""
    _, doc = demo_case
    planted = {c for _, c in PLANTED}
    planted_files = {SHELL_PATH, OAB_EXPORT_PATH, LSASS_DUMP_PATH, STAGED_ARCHIVE_PATH}
    for finding in doc.findings:  # type: ignore[attr-defined]
        if finding.category != "compromise":
            continue
        paths = {e.path.split("!")[0] for e in finding.evidence}
        assert finding.check in planted or paths <= planted_files, finding
        for ip in finding.indicators.get("client_ip", []):
            assert ip == ATTACKER_IP, finding


def test_verdict_and_case_layout(demo_case: tuple[Path, object]) -> None:
    root, doc = demo_case
    (host,) = doc.hosts  # type: ignore[attr-defined]
    assert host.verdict == "compromised"
    assert host.coverage.warnings == 0
    assert host.build.build.replace("0", "") in {"15.1.2176.2".replace("0", ""), "15.1.2176.2"}
    assert (root / "case" / "findings.json").is_file()
    for table in ("events", "files", "host_facts", "findings", "hits"):
        assert list((root / "case" / "store" / table).rglob("*.parquet")), table


def test_benign_only_collection_is_clean(tmp_path: Path) -> None:
    generate(tmp_path / "evidence", DemoSpec(per_day=800, attack=False, seed=7))
    doc = scan([tmp_path / "evidence"], ScanOptions(host="EXCH02", jobs=1, quiet=True)).document
    assert [f for f in doc.findings if f.category == "compromise"] == []
    assert doc.hosts[0].verdict == "clean"


def test_only_the_exfiltrated_mailbox_is_listed(demo_case: tuple[Path, object]) -> None:
    """The attacker read one mailbox over EWS; the benign users' own traffic lists nobody."""
    _, doc = demo_case
    impact = doc.impact  # type: ignore[attr-defined]
    assert [(e.mailbox, e.confidence, e.how) for e in impact] == [(EXFILTRATED, "high", ("ews",))]
    assert impact[0].requests == 8 and ATTACKER_IP in impact[0].sources
