"""One way to write a time: ISO 8601 in UTC with a ``Z`` (findings, manifest, reports, probe)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def iso_utc(ts: datetime) -> str: ...
@overload
def iso_utc(ts: datetime | None) -> str | None: ...
def iso_utc(ts: datetime | None) -> str | None:
    """``2021-03-03T07:52:10Z``; a naive time is taken as UTC (the store keeps UTC); None -> None."""
    if ts is None:
        return None
    if ts.tzinfo is None:  # the same text, a third of the time (one per hit, per file in the manifest)
        return ts.isoformat() + "Z"
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_from_epoch(value: float | None) -> str | None:
    """A file-system time stamp (seconds since 1970, UTC) as ISO 8601 UTC."""
    return None if value is None else iso_utc(datetime.fromtimestamp(value, UTC))
