"""One way to write a time: ISO 8601 in UTC with a ``Z`` (findings, manifest, reports, probe)."""

from __future__ import annotations

from collections.abc import Sequence
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


def parse_iso(text: str | None) -> datetime | None:
    """The time an ``iso_utc`` text (or any ISO 8601 text) names, aware; a text without a zone is UTC."""
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def order(text: str | None) -> str:
    """An ``iso_utc`` text as it sorts among others: ``iso_utc`` leaves out a zero fraction, and '.'
    sorts before 'Z', so ``...:01.500000Z`` came before ``...:01Z`` (the first evidence row, a first
    seen merged from two hosts). Texts of other shapes are returned as they are."""
    if not text:
        return ""
    if len(text) >= 20 and text.endswith("Z") and text[10] == "T":
        whole, dot, fraction = text[:-1].partition(".")
        return f"{whole}.{fraction.ljust(6, '0') if dot else '000000'}Z"
    return text


def iso_from_epoch(value: float | None) -> str | None:
    """A file-system time stamp (seconds since 1970, UTC) as ISO 8601 UTC."""
    return None if value is None else iso_utc(datetime.fromtimestamp(value, UTC))


# Seconds since 1970 that ``iso_from_epoch`` writes with four digits of year (0001-9999).
_FIRST, _LAST = -62135596800.0, 253402300799.0


def iso_from_epochs(values: Sequence[float | None]) -> list[str | None]:
    """``iso_from_epoch`` of many file times at once (numpy, no ``datetime`` per value: a listing
    has three per file, 60,000 for 20,000 pages). The microseconds round half to even from the
    fraction, with the carry into the second, exactly as ``datetime.fromtimestamp`` does; values it
    cannot write that way (missing, out of range) go through ``iso_from_epoch`` one by one."""
    import numpy as np

    times = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    usable = np.isfinite(times) & (times >= _FIRST) & (times <= _LAST)
    safe = np.where(usable, times, 0.0)
    fraction, whole = np.modf(safe)
    micro = np.rint(fraction * 1e6)
    carry, borrow = micro >= 1e6, micro < 0
    micro = np.where(carry, micro - 1e6, np.where(borrow, micro + 1e6, micro))
    whole = whole + carry - borrow
    stamps = whole.astype(np.int64) * 1_000_000 + micro.astype(np.int64)
    text = np.datetime_as_string(stamps.astype("datetime64[us]"), unit="us").tolist()
    out: list[str | None] = []
    for value, shown, ok, us in zip(values, text, usable.tolist(), micro.tolist(), strict=True):
        if not ok:
            out.append(iso_from_epoch(value))
        elif us:
            out.append(shown + "Z")
        else:
            out.append(shown[:-7] + "Z")  # whole seconds: no fraction, as ``isoformat`` writes them
    return out
