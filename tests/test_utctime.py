"""One time format for every output: ISO 8601, UTC, with a Z."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from exhunt.utctime import iso_from_epoch, iso_utc


def test_aware_times_are_converted_to_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert iso_utc(datetime(2021, 3, 3, 9, 52, 10, tzinfo=plus2)) == "2021-03-03T07:52:10Z"


def test_naive_times_are_taken_as_utc_and_none_stays_none() -> None:
    assert iso_utc(datetime(2021, 3, 3, 7, 52, 10, 500000)) == "2021-03-03T07:52:10.500000Z"
    assert iso_utc(None) is None


def test_epoch_seconds() -> None:
    assert iso_from_epoch(0) == "1970-01-01T00:00:00Z"
    assert iso_from_epoch(None) is None
    assert iso_from_epoch(datetime(2021, 3, 3, tzinfo=UTC).timestamp()) == "2021-03-03T00:00:00Z"
