from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exhunt.findings.model import AssessmentDocument, Finding, HostAssessment
from exhunt.reports.case import CitedEvent
from exhunt.reports.chart import DAY, HOUR, MAX_MARKS_PER_LANE, MINUTE, build_chart, step_for, ticks


@pytest.mark.parametrize(("span", "step"), [
    (5 * MINUTE, MINUTE), (2 * HOUR, 15 * MINUTE), (3 * DAY, 12 * HOUR), (60 * DAY, 14 * DAY),
    (200 * DAY, 30 * DAY), (7 * 365 * DAY, 365 * DAY), (30 * 365 * DAY, 4 * 365 * DAY),
])
def test_tick_step_fits_minutes_to_years(span: int, step: int) -> None:
    assert step_for(span) == step
    assert 1 <= len(ticks(0, span)) <= 9


def test_tick_labels_change_with_scale() -> None:
    t0 = int(datetime(2021, 3, 3, tzinfo=UTC).timestamp() * 1000)
    assert ticks(t0, t0 + 20 * MINUTE)[0].label == "03-03 00:00"
    assert ticks(t0, t0 + 5 * DAY)[0].label == "2021-03-03"
    assert ticks(t0, t0 + 300 * DAY)[-1].label.count("-") == 1


def _finding(fid: str, host: str) -> Finding:
    return Finding(fid, "c." + fid, "T " + fid, "high", "high", "compromise", host, "k", "d", None, None, 1)


def test_lanes_per_host_and_check_and_thinning() -> None:
    start = datetime(2021, 3, 1, tzinfo=UTC)
    events = [CitedEvent(start + timedelta(seconds=i), "A", "iis", "p", i, None, "x", ("a",))
              for i in range(MAX_MARKS_PER_LANE * 3)]
    events += [CitedEvent(start + timedelta(days=40), "B", "iis", "p", 1, None, "<b>", ("b",)),
               CitedEvent(None, "B", "files", "q", None, None, "", ("b",))]
    hosts = (HostAssessment("A", "compromised"), HostAssessment("B", "clean"), HostAssessment("C", "clean"))
    doc = AssessmentDocument("1.0", "0", "x", hosts, (_finding("a", "A"), _finding("b", "B")))
    chart = build_chart(doc, events)
    assert [lane.label for lane in chart.lanes] == ["A", "T a", "B", "T b", "C"]
    assert chart.lanes[-1].note == "no dated evidence cited"
    assert chart.undated == 1
    lane_a = [m for m in chart.marks if m.y == chart.lanes[1].y]
    assert len(lane_a) <= MAX_MARKS_PER_LANE and sum(m.count for m in lane_a) == MAX_MARKS_PER_LANE * 3
    xs = [m.x for m in chart.marks]
    assert min(xs) >= chart.left and max(xs) <= chart.width - chart.right
