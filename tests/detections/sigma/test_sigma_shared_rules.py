"""The 59 SigmaHQ rules of the shared set: all load and convert, and each fires on a row built from
its own detection logic and stays quiet on the same row with benign values."""

from __future__ import annotations

import pytest
from sigma.rule import SigmaRule

from exhunt.detections.sigma.loader import load, load_and_convert
from tests.conftest import shared_path
from tests.detections.sigma.casegen import matching_row, non_matching_row
from tests.detections.sigma.support import connect_rows, matched


@pytest.fixture(scope="module")
def shared_rules():  # type: ignore[no-untyped-def]
    return load_and_convert([shared_path("rules", "sigma")], include_builtin=False)


def test_all_shared_rules_load_and_convert(shared_rules) -> None:  # type: ignore[no-untyped-def]
    assert shared_rules.loaded == 59
    assert shared_rules.failed == []
    assert len(shared_rules.queries) == 59


def test_each_rule_fires_on_its_own_case(shared_rules) -> None:  # type: ignore[no-untyped-def]
    raw, _ = load([shared_path("rules", "sigma")], include_builtin=False)  # as written, not yet mapped
    rules = [r for r in raw if isinstance(r, SigmaRule)]
    rows, owner = [], {}
    for rule in rules:
        rows.append(matching_row(rule))
        owner[len(rows)] = rule.title
        rows.append(non_matching_row(rule))
    result = matched(connect_rows(rows), shared_rules)
    missing = [title for record, title in owner.items() if record not in result.get(title, [])]
    assert missing == []
    benign_hits = {title: ids for title, ids in result.items() if any(i % 2 == 0 for i in ids)}
    assert benign_hits == {}
    categories = {str(r.logsource.category or r.logsource.service) for r in rules}
    assert {"webserver", "process_creation", "msexchange-management"} <= categories
