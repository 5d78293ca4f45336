"""The mailbox impact over a generated case that exercises every log that shows mailbox access."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.detections.impact import PREFILTER
from exhunt.findings.model import AssessmentDocument, MailboxImpact
from tests.detections.impact import fixture


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AssessmentDocument]:
    root = tmp_path_factory.mktemp("impact")
    evidence = fixture.write_case(root / "evidence")
    doc = scan([evidence], ScanOptions(out=root / "case", host="EXCH01", jobs=1, quiet=True)).document
    return evidence, doc


def _by_mailbox(doc: AssessmentDocument) -> dict[str, MailboxImpact]:
    return {e.mailbox: e for e in doc.impact}


@pytest.mark.parametrize("box", sorted(fixture.EXPECTED))
def test_each_exposed_mailbox_is_listed(case: tuple[Path, AssessmentDocument], box: str) -> None:
    how, confidence = fixture.EXPECTED[box]
    entry = _by_mailbox(case[1]).get(box)
    assert entry is not None, f"{box} not listed"
    assert set(entry.how) == how
    assert entry.confidence == confidence
    assert entry.host == "EXCH01" and entry.first_seen and entry.evidence and entry.actions
    assert all(e.input for e in entry.evidence), "evidence cites its custody input like findings do"


def test_nothing_else_is_listed(case: tuple[Path, AssessmentDocument]) -> None:
    listed = {e.mailbox for e in case[1].impact}
    assert listed == set(fixture.EXPECTED)
    assert not [b for b in fixture.BENIGN if any(b in m for m in listed)]


def test_sorted_by_confidence_then_volume(case: tuple[Path, AssessmentDocument]) -> None:
    rank = {"high": 2, "medium": 1, "low": 0}
    entries = case[1].impact
    keys = [(-rank[e.confidence], -(e.bytes or 0)) for e in entries]
    assert keys == sorted(keys)


def test_forwarded_mail_counts_messages_after_the_change(case: tuple[Path, AssessmentDocument]) -> None:
    sales = _by_mailbox(case[1])[f"sales@{fixture.DOMAIN}"]
    assert sales.items == fixture.FORWARDED_OUT and sales.bytes == fixture.FORWARDED_BYTES
    assert not any("before the change" in e.excerpt for e in sales.evidence)
    assert any("Set-Mailbox -Identity 'sales@northwind.example' -ForwardingSmtpAddress $null" in a
               for a in sales.actions)


def test_forms_of_one_mailbox_become_one_entry(case: tuple[Path, AssessmentDocument]) -> None:
    boxes = _by_mailbox(case[1])
    legal = boxes[f"legal@{fixture.DOMAIN}"]  # a SID the Rps log pairs with NORTHWIND\legal, and an address
    assert any(f.startswith("Sid~") for f in legal.as_logged) and f"legal@{fixture.DOMAIN}" in legal.as_logged
    assert any("SSRF as NT AUTHORITY\\SYSTEM" in s for s in legal.sources)
    ceo = boxes[f"ceo@{fixture.DOMAIN}"]
    assert {"CEO@northwind.example", "SMTP:ceo@northwind.example"} <= set(ceo.as_logged)
    assert ceo.requests == 4, "an HttpProxy row and the EWS back-end row of one request count once"
    assert ceo.items == 5 + 12 + 1


def test_remediation_names_the_commands(case: tuple[Path, AssessmentDocument]) -> None:
    boxes = _by_mailbox(case[1])
    actions = " ".join(boxes[f"cfo@{fixture.DOMAIN}"].actions)
    assert "Remove-MailboxExportRequest" in actions and "Remove-MailboxPermission" in actions
    assert "Reset the credentials" in actions and "Notify the owner" in actions
    assert "Remove-InboxRule" in " ".join(boxes[f"victim@{fixture.DOMAIN}"].actions)
    assert "Remove-ManagementRoleAssignment" in " ".join(boxes["*"].actions)


def test_document_round_trips(case: tuple[Path, AssessmentDocument]) -> None:
    import orjson

    from exhunt.findings.document import document_bytes
    from exhunt.findings.model import document_from_dict

    doc = case[1]
    assert document_from_dict(orjson.loads(document_bytes(doc))) == doc


SOURCE_FREE = ("export-request", "mailbox-forwarding", "inbox-rule-forward", "fullaccess-permission",
               "impersonation-role", "proxytoken-inbox-rule")


def test_rows_needed_whatever_their_source_match_the_prefilter(case: tuple[Path, AssessmentDocument]) -> None:
    """Triage parses only prefiltered text-log lines (plus the pivot pass for attacker sources):
    every cited text-log line of a change that needs no source must match ``PREFILTER``."""
    evidence, doc = case
    patterns = [re.compile(p, re.I) for p in PREFILTER]
    checked = 0
    for entry in doc.impact:
        if not any(h.startswith(SOURCE_FREE) for h in entry.how):
            continue
        for ref in entry.evidence:
            if ref.line is None or ref.source in ("mailbox_audit", "message_tracking"):
                continue
            line = (evidence / ref.path).read_text(encoding="utf-8").splitlines()[ref.line - 1]
            assert any(p.search(line) for p in patterns), line
            checked += 1
    assert checked >= 6


def test_a_truncated_row_keeps_its_mailbox(case: tuple[Path, AssessmentDocument]) -> None:
    board = _by_mailbox(case[1])[f"board@{fixture.DOMAIN}"]
    assert board.items is None, "the item count was cut off: unknown, not zero"


def test_pivot_indicators_name_forwarding_addresses_and_grantees(case: tuple[Path, AssessmentDocument]) -> None:
    from exhunt.detections.impact import pivot_indicators
    from exhunt.events.store import connect

    evidence, _ = case
    con = connect(evidence.parent / "case" / "store")
    found = pivot_indicators(con)
    assert {f"sales@{fixture.DOMAIN}", f"victim@{fixture.DOMAIN}", fixture.DROP} <= set(found["address"])
    assert "northwind\\svc-archive" in found["account"] and "northwind\\temp01" in found["account"]


def test_document_with_impact_is_valid_against_the_schema(case: tuple[Path, AssessmentDocument]) -> None:
    import jsonschema
    import orjson

    from exhunt.reports import json_doc

    evidence, _ = case
    data = orjson.loads((evidence.parent / "case" / "findings.json").read_bytes())
    assert data["impact"]
    jsonschema.validate(data, json_doc.schema())
    data["impact"][0]["confidence"] = "certain"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json_doc.schema())


def test_report_impact_csv_writes_the_notification_list(case: tuple[Path, AssessmentDocument]) -> None:
    import csv

    from exhunt.cli import main

    case_dir = case[0].parent / "case"
    assert main(["report", str(case_dir), "--format", "impact-csv"]) == 0
    with (case_dir / "impact.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["mailbox"] for r in rows} == set(fixture.EXPECTED)
    assert list(rows[0]) == ["mailbox", "how", "first_seen", "last_seen", "sources", "confidence"]
    assert [r["confidence"] for r in rows] == sorted((r["confidence"] for r in rows),
                                                     key=["high", "medium", "low"].index)


def test_audit_entries_read_by_logon_or_all_in_batches_give_the_same_impact(
        case: tuple[Path, AssessmentDocument], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The audit export's entries are decided per distinct logon and only the listed logons' entries
    read; with more listed logons than the query names, every entry is read in batches and filtered:
    the same mailboxes, evidence and counts either way, and audit entries among them."""
    import shutil

    from exhunt.api import assess, plan
    from exhunt.detections.impact import audit

    evidence, doc = case
    store = tmp_path / "store"
    shutil.copytree(evidence.parent / "case" / "store", store)  # the module's case stays as it is
    work = plan([evidence], "EXCH01", store)
    monkeypatch.setattr(audit, "MAX_MATCHED", 0)
    monkeypatch.setattr(audit, "BATCH", 1)
    again = assess(store, work, ScanOptions(jobs=1, quiet=True))
    assert again.impact == doc.impact
    assert any(h.startswith("audit:") for e in doc.impact for h in e.how)
