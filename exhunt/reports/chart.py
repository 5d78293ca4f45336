"""Timeline chart geometry: one lane per (host, check), one mark per cited row, time axis ticks.

The HTML template draws this as inline SVG, so the chart is readable without any script and in
print; a small inline script in the template re-lays marks and ticks when the reader zooms, using
the same ``data-t`` (epoch milliseconds) each mark carries. Ticks step from one minute to a year so
an attack of minutes and a campaign of months are both readable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from exhunt.findings.model import AssessmentDocument, Finding
from exhunt.reports.case import CitedEvent, worst_finding

WIDTH = 1100
LEFT = 300  # room for lane labels
RIGHT = 20
TOP = 34  # room for the axis
LANE = 22
HOST_ROW = 26
MAX_MARKS_PER_LANE = 1500

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
STEPS = (MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY,
         7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 182 * DAY, 365 * DAY)
MAX_TICKS = 8


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    t: int  # epoch ms
    severity: str
    label: str  # tooltip: time, finding, excerpt (escaped by the template)
    count: int = 1


@dataclass(frozen=True)
class Lane:
    y: float
    label: str
    host: str
    is_host: bool = False
    note: str = ""


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass
class Chart:
    t0: int
    t1: int
    height: float
    lanes: list[Lane] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    width: int = WIDTH
    left: int = LEFT
    right: int = RIGHT
    top: int = TOP
    undated: int = 0

    @property
    def empty(self) -> bool:
        return not self.marks


def epoch_ms(ts: datetime) -> int:
    return int((ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp() * 1000)


def x_of(t: int, t0: int, t1: int) -> float:
    return round(LEFT + (t - t0) / max(t1 - t0, 1) * (WIDTH - LEFT - RIGHT), 1)


def step_for(span_ms: int) -> int:
    for step in STEPS:
        if span_ms / step <= MAX_TICKS:
            return step
    return -(-span_ms // (MAX_TICKS * STEPS[-1])) * STEPS[-1]  # whole years


def tick_label(t: int, step: int) -> str:
    when = datetime.fromtimestamp(t / 1000, UTC)
    if step >= 30 * DAY:
        return when.strftime("%Y-%m")
    if step >= DAY:
        return when.strftime("%Y-%m-%d")
    return when.strftime("%m-%d %H:%M")


def ticks(t0: int, t1: int) -> list[Tick]:
    step = step_for(t1 - t0)
    first = -(-t0 // step) * step
    return [Tick(x_of(t, t0, t1), tick_label(t, step)) for t in range(first, t1 + 1, step)]


def build_chart(doc: AssessmentDocument, events: Iterable[CitedEvent]) -> Chart:
    findings = {f.id: f for f in doc.findings}
    per_lane: dict[tuple[str, str], list[tuple[int, CitedEvent, Finding]]] = {}
    undated = 0
    for event in events:
        if event.ts is None:
            undated += 1
            continue
        f = worst_finding(event, findings)
        per_lane.setdefault((event.host, f.check), []).append((epoch_ms(event.ts), event, f))
    times = [t for rows in per_lane.values() for t, _, _ in rows]
    t0, t1 = (min(times), max(times)) if times else (0, HOUR)
    pad = max((t1 - t0) // 30, 5 * MINUTE)
    t0, t1 = t0 - pad, t1 + pad
    chart = Chart(t0=t0, t1=t1, height=TOP, undated=undated)
    titles = {f.check: f.title for f in doc.findings}
    y = float(TOP)
    for host in [h.host for h in doc.hosts] + sorted({h for h, _ in per_lane} - {h.host for h in doc.hosts}):
        starts = {c: min(t for t, _, _ in rows) for (h, c), rows in per_lane.items() if h == host}
        lanes = sorted(starts, key=lambda c: starts[c])
        note = "" if lanes else "no dated evidence cited"
        chart.lanes.append(Lane(y + HOST_ROW / 2, host, host, True, note))
        y += HOST_ROW
        for check in lanes:
            mid = y + LANE / 2
            rows = _thin(sorted(per_lane[(host, check)], key=lambda r: r[0]))
            chart.lanes.append(Lane(mid, titles.get(check, check), host))
            for t, event, f, count in rows:
                label = f"{datetime.fromtimestamp(t / 1000, UTC):%Y-%m-%d %H:%M:%S} UTC — {f.title}"
                label += f" ({count} rows)" if count > 1 else ""
                label += f"\n{event.path}:{event.line or event.record_id or ''}\n{event.excerpt[:300]}"
                chart.marks.append(Mark(x_of(t, t0, t1), mid, t, f.severity, label, count))
            y += LANE
    chart.height = y + 8
    chart.ticks = ticks(t0, t1)
    return chart


def _thin(rows: list[tuple[int, CitedEvent, Finding]]) -> list[tuple[int, CitedEvent, Finding, int]]:
    """Very busy lanes keep one mark per time bin (with its row count) so the file stays small."""
    if len(rows) <= MAX_MARKS_PER_LANE:
        return [(t, e, f, 1) for t, e, f in rows]
    lo, hi = rows[0][0], rows[-1][0]
    width = max((hi - lo) / MAX_MARKS_PER_LANE, 1)
    bins: dict[int, list[tuple[int, CitedEvent, Finding]]] = {}
    for row in rows:
        bins.setdefault(min(int((row[0] - lo) / width), MAX_MARKS_PER_LANE - 1), []).append(row)
    return [(b[0][0], b[0][1], b[0][2], len(b)) for _, b in sorted(bins.items())]
