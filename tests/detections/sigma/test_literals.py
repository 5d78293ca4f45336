"""Necessary literals of Sigma rules: AND takes one child, OR all, NOT and rendered values none;
every behaviour of exhunt's pack that fires holds one of the firing rule's literals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sigma.rule import SigmaRule

from exhunt.detections.sigma.literals import dedupe, logsource_names, necessary, regex_literals, rule_literals
from exhunt.detections.sigma.loader import converted_queries

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "pack.yml").read_text(encoding="utf-8"))


def rule(detection: dict[str, Any]) -> SigmaRule:
    return SigmaRule.from_dict({"title": "t", "logsource": {"product": "windows", "service": "security"},
                                "detection": detection})


def test_and_takes_the_most_selective_child_or_needs_all() -> None:
    found, _ = rule_literals(rule({"a": {"Image|endswith": "\\cmd.exe"}, "b": {"CommandLine|contains": "ab"},
                                   "condition": "a and b"}))
    assert found == ["\\cmd.exe"]
    found, _ = rule_literals(rule({"a": {"Image|endswith": ["\\cmd.exe", "\\powershell.exe"]},
                                   "condition": "a"}))
    assert found == ["\\cmd.exe", "\\powershell.exe"]
    found, why = rule_literals(rule({"a": {"Image|endswith": "\\cmd.exe"}, "b": {"User": "x"},
                                     "condition": "a or b"}))
    assert found is None and why  # 'x' is too short: the OR has a branch with no literal


@pytest.mark.parametrize("detection", [
    {"a": {"EventID": 4688}, "condition": "a"},  # a number
    {"a": {"Level": "Error"}, "condition": "a"},  # stored as a number, rendered by the parser
    {"a": {"AccessMask": "0x1410"}, "condition": "a"},  # may be a binary hex value
    {"a": {"LogonGuid": "{8f1e1d2c-0000-0000-0000-000000000000}"}, "condition": "a"},
    {"a": {"Image|re": "c.d|ab"}, "condition": "a"},
    {"a": {"Image|endswith": "\\cmd.exe"}, "condition": "not a"},
])
def test_values_never_stored_as_text_give_no_literal(detection: dict[str, Any]) -> None:
    assert rule_literals(rule(detection))[0] is None


def test_wildcards_split_values_and_only_ascii_runs_count() -> None:
    found, _ = rule_literals(rule({"a": {"CommandLine": "*-enc* JAB*"}, "condition": "a"}))
    assert found == ["-enc"]
    found, _ = rule_literals(rule({"a": {"TargetFilename|contains": "caf\u00e9s\\payload"}, "condition": "a"}))
    assert found == ["s\\payload"]


def test_logsource_names_only_when_every_selected_event_has_one() -> None:
    sysmon = ("(lower(\"channel\") = 'microsoft-windows-sysmon/operational' OR "
              "lower(\"provider\") = 'microsoft-windows-sysmon') AND \"event_id\" IN (11)")
    assert logsource_names(sysmon) == ["microsoft-windows-sysmon/operational", "microsoft-windows-sysmon"]
    assert logsource_names("\"kind\" = 'process'") == []
    assert logsource_names("lower(\"channel\") = 'system' OR \"kind\" = 'process'") == []


def test_dedupe_keeps_the_shortest_texts() -> None:
    assert dedupe(["Cmd.exe", "\\cmd.exe", "powershell", "POWERSHELL.EXE"]) == ("cmd.exe", "powershell")


def _row_text(row: dict[str, Any]) -> str:
    # the values as the record holds them: JSON's escaped backslashes and quotes undone (the task and sc
    # rules' literals hold a quote: 'binpath= "c:\\programdata\\')
    return json.dumps(row, ensure_ascii=False).replace("\\\\", "\\").replace('\\"', '"').lower()


@pytest.mark.parametrize("case", [c for c in CASES if c["fire"]], ids=[c["name"] for c in CASES if c["fire"]])
def test_every_firing_pack_case_holds_a_literal_of_the_rule(case: dict[str, Any]) -> None:
    """What the EVTX prefilter relies on: an event a rule fires on holds one of its literals (the
    row's channel and provider names stand in for a rule that has none)."""
    by_name = {q.rule.name: q for q in converted_queries([], include_builtin=True)}  # as the pipelines left them
    texts = [_row_text(row) for row in case["rows"]]
    for name in case["fire"]:
        query = by_name[name]
        assert isinstance(query.rule, SigmaRule)
        found, _ = rule_literals(query.rule, field_names=True)  # as the EVTX triage derives them (summary)
        found = found or logsource_names(query.logsource)
        assert found, name
        assert any(literal.lower() in text for literal in found for text in texts), (name, found)


def test_regex_literals_top_level_runs_or_alternatives() -> None:
    assert regex_literals(r"(?i)\\(msexchange[^\\]*|edgetransport|umservice)\.exe$") == [
        "msexchange", "edgetransport", "umservice"]
    assert regex_literals(r"(?i)powershell.*-enc") == ["powershell"]
    assert regex_literals("abc|defg") is None  # a top-level alternative with no group: nothing certain
    assert regex_literals("(ab|cd)x") is None


def test_a_keyword_literal_lies_within_one_value_of_the_record() -> None:
    """The engine finds a keyword across unnamed <Data> values (the message column joins them with
    spaces), the record holds each value apart: a keyword's literal ends at a space too (triage had
    dropped an MSSQL 18456 event whose keyword spans two values)."""
    found = necessary(rule({"keywords": ["login provided.  [CLIENT:"], "condition": "keywords"})
                      .detection.parsed_condition[0].parsed)
    assert found is not None and all(" " not in text for text in found) and found == ["provided."]
    field = necessary(rule({"sel": {"CommandLine|contains": "net user /add"}, "condition": "sel"})
                      .detection.parsed_condition[0].parsed)
    assert field == ["net user /add"]  # a field's value is one value: its spaces stay


def test_re2_posix_classes_give_no_literal() -> None:
    """DuckDB matches with RE2, whose [[:alpha:]] Python's parser reads as a set and a literal ']'."""
    assert regex_literals("smart[[:alpha:]]creen\\.exe") is None
    assert regex_literals("net[[:space:]]user") is None


def test_a_raw_windows_field_on_a_binary_value_gives_its_name() -> None:
    """A Security rule on an EventID and a SID had no literal: its channel name kept every Security
    event. The record of a match holds the field's name (its template's <Data Name=...>, its JSON key)."""
    sid = rule({"a": {"EventID": 4732, "MemberName|exists": True, "TargetSid": "S-1-5-32-544"}, "condition": "a"})
    assert rule_literals(sid)[0] is None  # web rules and the default: values only
    assert rule_literals(sid, field_names=True)[0] == ["MemberName"]  # the longer name of the two
    worded = rule({"a": {"TargetSid": "S-1-5-32-544", "TargetUserName": "Administrators"}, "condition": "a"})
    assert rule_literals(worded, field_names=True)[0] == ["Administrators"]  # a value beats a name
    for detection in (
        {"a": {"EventID": 4720}, "condition": "a"},  # no field at all
        {"a": {"TargetSid": None}, "condition": "a"},  # null: the field may be absent
        {"a": {"TargetSid|exists": False}, "condition": "a"},
        {"a": {"Computer|exists": True, "EventID": 4720}, "condition": "a"},  # a System value, not a record name
        {"a": {"image": "\\x"}, "condition": "a"},  # a normalized column, named by exhunt
        {"a": {"TargetSid": "S-1-5-32-544"}, "condition": "not a"},
    ):
        assert rule_literals(rule(detection), field_names=True)[0] is None, detection
