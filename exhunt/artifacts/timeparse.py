"""Timestamps as Exchange and IIS write them, always returned as aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


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
