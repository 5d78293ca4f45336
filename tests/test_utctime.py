"""Many file times at once are written exactly as one at a time."""

from __future__ import annotations

import math
import random

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
