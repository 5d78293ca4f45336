"""Timestamps as Exchange and IIS write them, always returned as aware UTC datetimes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# .NET's JSON date (Windows PowerShell 5.1's ConvertTo-Json): milliseconds since 1970 in UTC; the
# offset some writers add says the writer's zone, not a shift of the instant
MS_DATE_RE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def parse_ts(text: str | None) -> datetime | None:
    """ISO-8601 (``2021-03-03T01:02:03.456Z``), IIS ``date time`` pairs or ``... UTC``; naive means UTC."""
    if not text:
        return None
    text = text.strip()
    if text.endswith(" UTC"):  # Sysmon and some exports spell the zone out
        text = text[:-4]
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def ms_date(text: str) -> datetime | None:
    """The instant of a ``/Date(1614823200000)/`` (or ``/Date(ms+0100)/``) text, else None."""
    match = MS_DATE_RE.match(text.strip())
    if match is None:
        return None
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(match[1]))
    except OverflowError:
        return None
