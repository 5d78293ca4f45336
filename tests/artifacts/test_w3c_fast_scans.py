"""The byte scans of the W3C fast path against the obvious per-line definitions."""

from __future__ import annotations

import re

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from exhunt.artifacts.w3c_fast import _NOT_CONTROL, _columns_holding, _has_control_byte, _has_line_of, header_lines

LINES = st.lists(st.sampled_from([b"#Fields: a b", b"#", b"x y", b"", b"##", b"a#b", b"\r", b"#x\r", b"z" * 9]),
                 max_size=12)


def _joined(parts: list[bytes], tail: bool) -> bytes:
    data = b"\n".join(parts)
    return data + b"\n" if tail and parts else data


@given(LINES, st.booleans())
def test_header_lines_are_the_lines_starting_with_hash(parts: list[bytes], tail: bool) -> None:
    data = _joined(parts, tail)
    expected = [(m.start(), m.end()) for m in re.finditer(rb"(?m)^#[^\n]*\n?", data)]
    assert list(header_lines(data)) == expected


@given(LINES, st.booleans(), st.integers(min_value=2, max_value=12))
def test_has_line_of_matches_the_longest_line(parts: list[bytes], tail: bool, limit: int) -> None:
    data = _joined(parts, tail)
    lengths = [len(line) + 1 for line in data.split(b"\n")[:-1]]  # terminated lines, newline included
    last = data.rsplit(b"\n", 1)[-1] if b"\n" in data else data
    lengths.append(len(last))  # the unterminated tail (0 when data ends with a newline)
    assert _has_line_of(data, limit) == (max(lengths) >= limit)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["", "a", '"', "\\", "x\ry", "b\n", "é"]), min_size=1, max_size=3),
                min_size=1, max_size=5),
       st.integers(1, 4), st.sampled_from([(b'"', b"\\"), (b"\r", b"\n"), (b"\n",)]))
def test_columns_holding_finds_the_columns_a_search_per_column_finds(
        pattern: list[list[str]], rows: int, needles: tuple[bytes, ...]) -> None:
    """Columns in several chunks, one a slice (its buffer holds bytes outside it): the one search
    over the columns laid end to end names exactly the columns holding a needle."""
    columns = []
    for values in pattern:
        cells = (values * rows)[:rows]
        half = len(cells) // 2
        padded = pa.array(["\r\n\"\\"] + cells[half:] + ["\r\n\"\\"]).slice(1, len(cells) - half)
        columns.append(pa.chunked_array([pa.array(cells[:half], pa.string()), padded], pa.string()))
    raw = pa.table({f"c{i}": c for i, c in enumerate(columns)})
    expected = {i for i, c in enumerate(columns)
                if any(n.decode() in v for v in c.to_pylist() for n in needles)}
    assert _columns_holding(raw, needles) == expected


@given(st.binary(max_size=64) | st.lists(st.sampled_from([b"\t", b"\r\n", b"\x00", b"\x1f", b"\x7f", b"a", b"\xe9"]),
                                          max_size=20).map(b"".join))
def test_control_byte_search_matches_the_byte_table(data: bytes) -> None:
    """Hyperscan's one-class search against the deletion by byte table it replaced."""
    assert _has_control_byte(data) == bool(data.translate(None, _NOT_CONTROL))
