"""Names and evidence text made safe to show: the C fast paths agree with the per-character rule."""

from __future__ import annotations

import pytest

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
