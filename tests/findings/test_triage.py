"""Grouping hits into findings gives the same finding whatever order a query returned its rows in."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from exhunt.detections.base import Check, Hit
from exhunt.findings.triage import MAX_EVIDENCE, MAX_INDICATOR_VALUES, group_hits


class _Probe(Check):
    id = "test.order"
    title = "order"
    severity = "high"
    description = "test"


START = datetime(2021, 3, 3, tzinfo=UTC)


def _hits() -> list[Hit]:
    return [
        Hit(check=_Probe.id, host="h", key="k", path=f"log{n % 7}.log", source="iis", ts=START + timedelta(seconds=n),
            line=n, record_id=None, excerpt=f"row {n}", confidence="high",
            indicators={"client_ip": f"203.0.113.{n % 250}", "user_agent": f"agent-{n:04d}"})
        for n in range(1000)
    ]


def test_same_finding_in_any_row_order() -> None:
    hits = _hits()
    expected_rows: list[dict] = []
    (expected,) = group_hits(_Probe(), hits, expected_rows)
    for seed in range(5):
        shuffled = hits[:]
        random.Random(seed).shuffle(shuffled)
        rows: list[dict] = []
        (finding,) = group_hits(_Probe(), shuffled, rows)
        assert finding == expected
        assert len(rows) == len(expected_rows) == 1000
    assert finding.count == 1000
    assert [e.line for e in finding.evidence] == list(range(MAX_EVIDENCE))  # the earliest rows
    assert finding.indicators["user_agent"] == [f"agent-{n:04d}" for n in range(MAX_INDICATOR_VALUES)]
    assert len(finding.indicators["client_ip"]) == MAX_INDICATOR_VALUES


def test_first_and_last_seen_are_the_earliest_and_latest_hit_in_any_order() -> None:
    hits = _hits()[:50]
    untimed = Hit(check=_Probe.id, host="h", key="other", path="x.aspx", source="files", ts=None, line=None,
                  record_id=None, excerpt="", confidence="high", indicators={})
    for seed in range(3):
        shuffled = [*hits, untimed]
        random.Random(seed).shuffle(shuffled)
        timed, without = sorted(group_hits(_Probe(), shuffled), key=lambda f: f.key)
        assert (timed.first_seen, timed.last_seen) == ("2021-03-03T00:00:00Z", "2021-03-03T00:00:49Z")
        assert (without.first_seen, without.last_seen) == (None, None) and without.count == 1
