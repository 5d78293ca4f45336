"""The head marks' Hyperscan test agrees with the Python one on every head, in any thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hypothesis import given, settings
from hypothesis import strategies as st

from exhunt import artifacts
from exhunt.artifacts import HEAD_MARKS, HEAD_START, marked_in_python, may_be_content_claimed
from exhunt.artifacts.files import HEAD_BYTES
from exhunt.artifacts.headmarks import compile_marks
from tests.artifacts.test_choose import PIECES

MATCHER = compile_marks(HEAD_MARKS, HEAD_START.pattern)


def test_the_artifacts_marks_compile() -> None:
    assert MATCHER is not None  # else every page takes the Python test (slower, still right)


@settings(max_examples=4000, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=40)), max_size=14),
       st.sampled_from([lambda b: b, bytes.upper, bytes.lower, bytes.swapcase]))
def test_hyperscan_and_python_agree(pieces: list[bytes], case) -> None:  # type: ignore[no-untyped-def]
    head = case(b"".join(pieces))[:HEAD_BYTES]
    assert MATCHER is not None
    if b"\x00" not in head:  # NUL heads never reach the marks (every sniff decides)
        assert MATCHER(head) == marked_in_python(head), head


def test_marks_deep_in_a_long_head_and_at_the_start_only() -> None:
    assert MATCHER is not None
    filler = b"<html>" + b"x" * (HEAD_BYTES - 100)
    assert MATCHER(filler + b"#FIELDS: date") and marked_in_python(filler + b"#FIELDS: date")
    assert not MATCHER(b"<p>\n" + b"{") and not marked_in_python(b"<p>\n" + b"{")  # '{' counts only first
    assert MATCHER(b"  {") and marked_in_python(b"  {")


def test_each_thread_scans_with_its_own_scratch() -> None:
    """Dask workers run files in threads: one shared scratch would make concurrent scans fail."""
    heads = [b"<html>" * 200, b"#Software: Microsoft Exchange Server\r\n", b"<%@ Page %>" * 100, b"a,b,c\n"]
    expected = [marked_in_python(h) for h in heads] * 500
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(may_be_content_claimed, heads * 500))
    assert got == expected and True in got and False in got


def test_upper_case_patterns_leave_the_python_test_in_charge() -> None:
    assert compile_marks((b"#Fields:",), b"") is None  # caseless would match what lower() never could
    assert compile_marks((), b"") is None
    assert artifacts.may_be_content_claimed(b"\xff\xfe#\x00") is True
