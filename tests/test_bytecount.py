"""``bytecount`` counts as ``bytes.count`` does, on every buffer kind, short ranges and vectorised ones."""

from __future__ import annotations

import mmap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exhunt import bytecount


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"\n", b"x", b"\r\n", b"yz"]), min_size=1, max_size=150).map(b"".join),
       st.floats(0, 1.1), st.floats(0, 1.1), st.sampled_from([0, 1, 8, 1 << 14]), st.sampled_from([1, 3, 4096]))
def test_newlines_count_as_bytes_count(data: bytes, start_at: float, end_at: float, vector_from: int,
                                       step: int) -> None:
    """Whichever way a range is counted (numpy slices of ``STEP`` bytes from ``VECTOR_FROM`` on),
    the count of ``bytes.count``, for bytes, bytearray and memoryview."""
    start, end = int(start_at * len(data)), int(end_at * len(data))
    saved = bytecount.VECTOR_FROM, bytecount.STEP
    bytecount.VECTOR_FROM, bytecount.STEP = vector_from, step
    try:
        for buffer in (data, bytearray(data), memoryview(data)):
            assert bytecount.newlines(buffer, start, end) == data.count(b"\n", start, end)
    finally:
        bytecount.VECTOR_FROM, bytecount.STEP = saved


def test_a_long_range_of_a_mapped_file_is_counted_and_the_map_closes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = (b"a line of a log\r\n" * 50_000) + b"no newline at the end"
    path = tmp_path / "log"
    path.write_bytes(data)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert bytecount.newlines(mapped, 17, len(data) - 5) == data.count(b"\n", 17, len(data) - 5)
        assert bytecount.count_byte(mapped, ord("a")) == data.count(b"a")
    # closing the map would raise BufferError had a numpy view of it outlived the count


@pytest.mark.parametrize("value", [0, 10, 255])
def test_every_byte_value(value: int) -> None:
    data = bytes(range(256)) * 300
    assert bytecount.count_byte(data, value) == 300
