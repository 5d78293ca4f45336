"""A --sigma folder holding files that are not rules: each is listed as failed with its reason, the rest load."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.detections.sigma.loader import load_and_convert

GOOD_RULE = """
title: cmd from w3wp
id: 0b3ab5e5-1111-4a5a-9d0e-000000000001
logsource: {category: process_creation, product: windows}
detection:
  sel: {ParentImage|endswith: '\\\\w3wp.exe', Image|endswith: '\\\\cmd.exe'}
  condition: sel
level: high
"""


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("list.yml", "- a\n- b\n", "is a list, not a mapping"),
        ("scalar.yml", "just words\n", "is a str, not a mapping"),
        ("broken.yml", "title: [unclosed\n", "(line 2, column 1)"),
        ("latin1.yml", b"title: caf\xe9\n", "UnicodeDecodeError"),
        ("empty.yml", "", "no Sigma rule in the file"),
        ("separator.yml", "---\n", "no Sigma rule in the file"),
        ("date.yml", GOOD_RULE.replace("level: high", "level: high\ndate: 2020-13-45"), "ValueError"),
        ("int_id.yml", GOOD_RULE.replace("id: 0b3ab5e5-1111-4a5a-9d0e-000000000001", "id: 5"), ""),
        ("int_field.yml", GOOD_RULE.replace("sel: {", "sel: {5: 1, "), ""),
        ("cond_int.yml", GOOD_RULE.replace("condition: sel", "condition: 5"), ""),
        ("cond_null.yml", GOOD_RULE.replace("condition: sel", "condition: null"), ""),
        ("cond_map.yml", GOOD_RULE.replace("condition: sel", "condition: {x: 1}"), ""),
    ],
)
def test_non_rule_yaml_is_listed_as_failed(tmp_path: Path, name: str, text: str | bytes, reason: str) -> None:
    (tmp_path / "good.yml").write_text(GOOD_RULE, encoding="utf-8")
    bad = tmp_path / name
    if isinstance(text, bytes):
        bad.write_bytes(text)
    else:
        bad.write_text(text, encoding="utf-8")
    ruleset = load_and_convert([tmp_path], include_builtin=False)
    assert {f["path"] for f in ruleset.failed} == {str(bad)}, ruleset.failed
    assert reason in ruleset.failed[0]["reason"]
    assert ruleset.report()["converted"] == 1  # the good rule beside it still converts


def test_mixed_file_keeps_its_rules(tmp_path: Path) -> None:
    (tmp_path / "mixed.yml").write_text(GOOD_RULE + "---\n- not a rule\n", encoding="utf-8")
    ruleset = load_and_convert([tmp_path], include_builtin=False)
    assert len(ruleset.failed) == 1 and "document 2" in ruleset.failed[0]["reason"]
    assert ruleset.report()["converted"] == 1


def test_a_rule_no_pipeline_maps_fails_with_a_short_reason(tmp_path: Path) -> None:
    """A rule whose logsource no pipeline maps is listed as failed with pySigma's message only (its
    text appends the whole rule's repr: kilobytes on one line of findings.json)."""
    rule = tmp_path / "unmapped.yml"
    rule.write_text("title: Unmapped\nid: 3c6b9a47-3f0e-4c5e-8f8f-0a1b2c3d4e5f\nstatus: test\n"
                    "logsource:\n    product: windows\ndetection:\n    keywords:\n        - 'x'\n"
                    "    condition: keywords\nlevel: low\n", encoding="utf-8")
    ruleset = load_and_convert([rule], include_builtin=False)
    assert [f["title"] for f in ruleset.failed] == ["Unmapped"]
    reason = ruleset.failed[0]["reason"]
    assert reason.startswith("no pipeline maps logsource") and "SigmaRule(" not in reason and len(reason) < 200
