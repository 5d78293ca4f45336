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
