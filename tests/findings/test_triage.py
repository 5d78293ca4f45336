"""Grouping hits into findings gives the same finding whatever order a query returned its rows in."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from exhunt.detections.base import Check, Hit
from exhunt.findings.model import Finding
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


class _Refined(_Probe):
    id = "test.refined"

    def refine(self, finding: Finding) -> Finding:
        return replace(finding, cves=(f"CVE-{finding.key}",))


def _one_per_key() -> list[Hit]:
    """Rows that are each their own finding: times, no time, low confidence, indicators or none."""
    return [
        Hit(check=_Probe.id, host=f"h{n % 3}", key=f"page{n}.aspx", path=f"web/page{n}.aspx", source="files",
            ts=None if n % 5 == 0 else START + timedelta(seconds=n, microseconds=0 if n % 2 else n),
            line=n if n % 4 else None, record_id=None, excerpt=f"page {n}",
            confidence="low" if n % 7 == 0 else "high",
            indicators={} if n % 6 == 0 else {"sha256": f"{n:064x}", "file_path": f"web/page{n}.aspx"})
        for n in range(300)
    ]


@pytest.mark.parametrize("check", [_Probe(), _Refined()], ids=["plain", "refined"])
def test_rows_that_are_each_a_finding_group_as_the_general_loop_does(check: Check) -> None:
    """A check with one row per page takes the one-row path; with two rows of one finding added the
    general loop groups the same rows: the same findings and stored rows, in the same order."""
    alone = _one_per_key()
    pair = [replace(alone[0], key="shared", path=f"web/shared{n}.aspx") for n in range(2)]
    rows_one: list[dict] = []
    rows_general: list[dict] = []
    one = group_hits(check, alone, rows_one)
    general = group_hits(check, alone + pair, rows_general)
    assert len(general) == len(alone) + 1 and general[-1].count == 2  # the general loop did run
    assert one == general[:-1]
    assert rows_one == rows_general[:-2]
    assert {f.severity for f in one} == {"high", "medium"}
    assert one[1].evidence[0].ts == one[1].first_seen == one[1].last_seen
    assert one[0].first_seen is None and one[0].indicators == {}
