"""The EVTX chunk literals of a scan: every check declares what it reads of Windows events, a check or
rule that needs every event forces a full parse (and says so), ``--index full`` parses everything."""

from __future__ import annotations

import json
from pathlib import Path

from exhunt.detections import eventfilter
from exhunt.detections.base import Check
from exhunt.detections.checks import CHECKS


def test_every_check_declares_its_windows_event_literals() -> None:
    assert [c.id for c in CHECKS if c.event_literals is None] == []


def test_builtin_pack_and_checks_give_literals() -> None:
    plan = eventfilter.build("triage", CHECKS, [])
    assert plan.literals and plan.full_because == []
    assert "new-mailboxexportrequest" in plan.literals and "\\w3wp.exe" in plan.literals
    assert eventfilter.build("full", CHECKS, []).literals is None


def test_a_check_reading_every_event_forces_full(tmp_path: Path) -> None:
    class EveryEvent(Check):
        id = "test.every_event"

    plan = eventfilter.build("triage", (*CHECKS, EveryEvent), [])
    assert plan.literals is None
    assert plan.full_because[0]["what"] == "check test.every_event"


def test_a_rule_without_literals_or_channel_forces_full(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(
        "title: any process\nlogsource: {category: process_creation, product: windows}\n"
        "detection: {sel: {Image|re: 'a|b'}, condition: sel}\n", encoding="utf-8")
    plan = eventfilter.build("triage", CHECKS, [tmp_path / "r.yml"])
    assert plan.literals is None and "any process" in plan.full_because[0]["what"]
    (tmp_path / "r.yml").write_text(
        "title: any sysmon file\nlogsource: {category: file_event, product: windows}\n"
        "detection: {sel: {EventID: 11}, condition: sel}\n", encoding="utf-8")
    plan = eventfilter.build("triage", CHECKS, [tmp_path / "r.yml"])
    assert plan.literals is not None and "microsoft-windows-sysmon" in plan.literals
    # a raw field compared with no literal value: its name, which every matching record holds
    (tmp_path / "r.yml").write_text(
        "title: any sysmon file\nlogsource: {category: file_event, product: windows}\n"
        "detection: {sel: {TargetFilename|re: 'a|b'}, condition: sel}\n", encoding="utf-8")
    plan = eventfilter.build("triage", CHECKS, [tmp_path / "r.yml"])
    assert plan.literals is not None and "targetfilename" in plan.literals
    assert "microsoft-windows-sysmon" not in plan.literals


def test_ip_indicators_are_literals(tmp_path: Path) -> None:
    (tmp_path / "ips.txt").write_text("203.0.113.77\n", encoding="utf-8")
    plan = eventfilter.build("triage", CHECKS, [], [tmp_path / "ips.txt"])
    assert plan.literals is not None and "203.0.113.77" in plan.literals


WINDOWS_EVENT_SOURCES = {"evtx", "ndjson"}


def test_positive_cases_hold_an_event_literal_of_their_check() -> None:
    """The rows of Windows events a check fires on hold one of its ``event_literals`` (what the EVTX
    chunk prefilter relies on); a check that reads no Windows event has no such positive row."""
    from tests.detections.test_cases import load_cases

    by_id = {c.id: c for c in CHECKS}
    checked = 0
    for param in load_cases():
        case = param.values[0]
        check = by_id.get(case["check"])
        if check is None or not (case.get("expect") or {}).get("findings"):
            continue
        for row in (case.get("rows") or {}).get("events", []):
            if row.get("source") not in WINDOWS_EVENT_SOURCES:
                continue
            text = json.dumps(row, ensure_ascii=False).replace("\\\\", "\\").lower()
            assert check.event_literals, (check.id, row)
            assert any(literal.lower() in text for literal in check.event_literals), (check.id, row)
            checked += 1
    assert checked >= 2
