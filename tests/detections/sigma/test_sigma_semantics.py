"""Each Sigma modifier behaves as pySigma specifies it (cases/semantics.yml): rows in, matches out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.detections.sigma.support import connect_rows, matched, ruleset_from_yaml

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "semantics.yml").read_text(encoding="utf-8"))


def rule_for(case: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": case["name"],
        "logsource": case.get("logsource", {"category": "process_creation", "product": "windows"}),
        "detection": case["detection"],
    }


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_semantics(case: dict[str, Any]) -> None:
    ruleset = ruleset_from_yaml(rule_for(case))
    assert ruleset.failed == []
    con = connect_rows(case["rows"])
    assert matched(con, ruleset).get(case["name"], []) == case["match"]
    assert len(case["match"]) < len(case["rows"]), "every case needs a row that must not match"


def test_ipv6_cidr_is_reported_not_guessed() -> None:
    ruleset = ruleset_from_yaml(
        rule_for({"name": "v6", "detection": {"s": {"DestinationIp|cidr": "fe80::/10"}, "condition": "s"}})
    )
    assert ruleset.queries == []
    assert "IPv6" in ruleset.failed[0]["reason"]


def test_unmapped_logsource_fails_with_reason() -> None:
    ruleset = ruleset_from_yaml(
        {
            "title": "linux",
            "logsource": {"product": "linux", "service": "auth"},
            "detection": {"s": {"x": "y"}, "condition": "s"},
        }
    )
    assert ruleset.queries == []
    assert "logsource" in ruleset.failed[0]["reason"]
