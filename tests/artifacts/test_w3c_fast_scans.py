"""The byte scans of the W3C fast path against the obvious per-line definitions."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from exhunt.artifacts.w3c_fast import _has_line_of, header_lines

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
