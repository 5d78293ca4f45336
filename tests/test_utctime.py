"""Many file times at once are written exactly as one at a time."""

from __future__ import annotations

import math
import random

from exhunt import utctime
from exhunt.utctime import iso_from_epoch, iso_from_epochs


def test_many_times_equal_one_at_a_time() -> None:
    rng = random.Random(7)
    values: list[float | None] = [0.0, -0.5, -1e-7, 1.5, 1614815980.164535999, 1614815980.9999995,
                                  1614815980.0000005, 1614815980.0000015, 1e9 + 0.25, -62135596800.0,
                                  253402300799.0, 253402300799.4, -1.0000005, None]
    values += [rng.uniform(-2e9, 4e9) for _ in range(20_000)]
    values += [math.floor(v) + k / 2e6 for v in (1e9, 1.6e9, -3e8) for k in range(0, 2_000_001, 97)]
    values += [rng.randrange(0, 2 ** 33) + rng.randrange(0, 10 ** 6) / 1e6 for _ in range(20_000)]
    assert iso_from_epochs(values) == [iso_from_epoch(v) for v in values]


def test_times_no_datetime_can_write_go_one_by_one() -> None:
    for bad in (float("nan"), 1e20, -1e20):
        try:
            expected: object = iso_from_epoch(bad)
        except (ValueError, OverflowError, OSError) as exc:
            expected = type(exc)
        try:
            got: object = iso_from_epochs([bad])[0]
        except (ValueError, OverflowError, OSError) as exc:
            got = type(exc)
        assert got == expected


def test_times_of_mixed_precision_sort_as_instants() -> None:
    """``iso_utc`` leaves out a zero fraction, and '.' sorts before 'Z': a row at 01.5 s came before
    one at 01 s, in a finding's evidence (and the cap on it) and in a first seen merged from hosts."""
    from exhunt.findings.model import EvidenceRef, MailboxImpact
    from exhunt.findings.triage import evidence_order
    from exhunt.reports.impact_csv import merged

    texts = ["2021-03-03T02:10:01.500000Z", "2021-03-03T02:10:01Z", "2021-03-03T02:10:00.999999Z",
             "2021-03-03T02:10:02Z"]
    assert sorted(texts, key=utctime.order) == [texts[2], texts[1], texts[0], texts[3]]
    refs = [EvidenceRef("p", "iis", n, None, ts, "") for n, ts in enumerate(texts)]
    assert [r.ts for r in sorted(refs, key=evidence_order)] == sorted(texts, key=utctime.order)
    boxes = tuple(MailboxImpact(host=h, mailbox="heidi@corp.example", how=("ews",), first_seen=first,
                                last_seen=first, sources=(), requests=1, items=None, bytes=None,
                                confidence="high") for h, first in (("A", texts[0]), ("B", texts[1])))
    (row,) = merged(boxes)
    assert (row["first_seen"], row["last_seen"]) == (texts[1], texts[0])
