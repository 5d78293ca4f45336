"""Names and evidence text made safe to show: the C fast paths agree with the per-character rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exhunt.evidence import names


def _slow(text: str, keep: str) -> str:
    return "".join(names._escape_char(ch) if ch not in keep and names._unsafe_char(ch) else ch for ch in text)


@pytest.mark.parametrize("code", range(128))
def test_every_ascii_character_alone_and_inside_text(code: int) -> None:
    for text in (chr(code), f"a{chr(code)}b\tc\nd"):
        assert names.printable(text) == (_slow(text, ""), _slow(text, "") != text)
        assert names.visible(text) == _slow(text, "\t\n\r")


@pytest.mark.parametrize(("text", "shown"), [
    ("owa/auth/x\u202egpj.aspx", "owa/auth/x\\u202egpj.aspx"),  # right-to-left override
    ("a\udcffb", "a\\xffb"),  # an undecodable byte kept by surrogateescape
    ("caf\u00e9\u200d", "caf\u00e9\u200d"),  # letters and the zero-width joiner stay
    ("line\x1b[31m", "line\\x1b[31m"),
])
def test_format_control_and_surrogates_are_escaped(text: str, shown: str) -> None:
    assert names.printable(text)[0] == shown
    assert names.visible(text + "\n") == shown + "\n"
    assert names.printable("a\tb") == ("a\\x09b", True)  # names keep no tab, text does


@pytest.mark.parametrize("text", [
    "C:\\Users\\Jos\u00e9\\AppData \u2014 \u201cquoted\u201d\u2026\r\n\tnext\x00line\x7f",
    "\u0417\u0430\u043f\u0443\u0441\u043a \u200e\u202a\u2066mixed\ud800 \U0001f600\u200d\ufeff end",
    "\x85\xa0\xad\u061c\u2028\u2029\ue000 and ascii",
])
def test_visible_looks_only_at_the_characters_that_may_be_unsafe(text: str) -> None:
    assert names.visible(text) == _slow(text, "\t\n\r")


# the characters a name may hold, safe and unsafe (C0, DEL, format, past U+FFFF) and the look-alikes of
# an escape's text; a backslash never (a Windows name holds none)
NAME_CHARS = list("ax0fe1u\u00e9\x07\x7f\x1b\u202e\u200b\u200d\U000e0001\U000110bd\ue000")


@given(st.lists(st.sampled_from(NAME_CHARS), max_size=10).map("".join))
def test_real_name_reads_back_what_printable_showed(name: str) -> None:
    assert names.real_name(names.printable(name)[0]) == name


@pytest.mark.parametrize("name", ["a\udcffb.aspx", "a\x85b.aspx", "a\u00adb.aspx", "a\ud800b.aspx"])
def test_real_name_is_none_where_no_text_is_the_name(name: str) -> None:
    """An undecodable byte and a C1 control (or soft hyphen) print alike (``\\x85``); a lone surrogate is no
    Unicode text: no JSON or STIX string can name either."""
    assert names.real_name(names.printable(name)[0]) is None


def test_real_name_keeps_text_printable_cannot_have_written() -> None:
    assert names.real_name("a\\x41\\u0007\\q.aspx") == "a\\x41\\u0007\\q.aspx"


def test_an_escape_past_u_ffff_is_never_read_as_a_shorter_one() -> None:
    """``\\u`` takes four digits or five: no unsafe character past U+FFFF begins with the digits of one
    in the BMP, so at most one reading is a character ``printable`` escapes."""
    for code in range(0x10000, 0x110000):
        if names._unsafe_char(chr(code)):
            assert code <= 0xFFFFF and not names._unsafe_char(chr(int(f"{code:x}"[:4], 16))), hex(code)
