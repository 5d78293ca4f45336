"""Batches whose logsource selects no row are bound but not executed: same matches, same failures."""

from __future__ import annotations

import dataclasses

from tests.detections.sigma.support import connect_rows, matched, ruleset_from_yaml


def _rule(title: str, image: str) -> dict:
    return {
        "title": title,
        "logsource": {"category": "process_creation", "product": "windows"},
        "detection": {"s": {"Image|endswith": image}, "condition": "s"},
    }


ROWS = [
    {"kind": "process", "image": "C:\\w\\cmd.exe"},
    {"kind": "event", "image": "C:\\w\\cmd.exe"},
]


def test_rows_of_a_present_logsource_still_match() -> None:
    ruleset = ruleset_from_yaml(_rule("cmd", "\\cmd.exe"), _rule("ps", "\\powershell.exe"))
    assert matched(connect_rows(ROWS), ruleset) == {"cmd": [1]}


def test_rule_that_does_not_bind_is_reported_even_without_rows() -> None:
    ruleset = ruleset_from_yaml(_rule("good", "\\cmd.exe"), _rule("broken", "\\x.exe"))
    broken = next(q for q in ruleset.queries if q.rule.title == "broken")
    index = ruleset.queries.index(broken)
    ruleset.queries[index] = dataclasses.replace(broken, predicate='"no_such_column" = 1')
    no_process_rows = [{"kind": "event", "image": "C:\\w\\cmd.exe"}]
    assert matched(connect_rows(no_process_rows), ruleset) == {}
    assert [f["title"] for f in ruleset.failed] == ["broken"]
    assert ruleset.failed[0]["reason"].startswith("query failed")
