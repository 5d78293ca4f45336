"""``url_text`` and ``literal``: a line holding a text as a caseless SQL match accepts it (either
ASCII case, or a character DuckDB takes for a letter: ``exhunt.sqlfold``) is selected, raw and, for
``url_text``, with any of its bytes %-encoded."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exhunt.artifacts.linefilter import LineSelector, compile_patterns
from exhunt.detections.patterns import literal, url_text
from tests.helpers import caseless_spellings

# no line breaks, NUL or space, nor the characters a raw URL may write otherwise ('?', '"')
TEXT = st.text(st.characters(min_codepoint=0x21, blacklist_characters='?"', blacklist_categories=("Cs",)),
               min_size=1, max_size=10)


def _selects(pattern: str, line: bytes) -> bool:
    return bool(LineSelector(compile_patterns([pattern]).blob).spans(b"GET /x " + line + b" 200\r\n"))


def _url_encoded(text: str, encode: list[bool]) -> bytes:
    """``text``'s UTF-8 bytes, each %-encoded where ``encode`` says (cycled)."""
    return b"".join(f"%{b:02X}".encode() if encode[i % len(encode)] else bytes([b])
                    for i, b in enumerate(text.encode()))


@settings(max_examples=200, deadline=None)
@given(text=TEXT, data=st.data(), encode=st.lists(st.booleans(), min_size=1, max_size=5))
def test_url_text_selects_every_raw_spelling(text: str, data: st.DataObject, encode: list[bool]) -> None:
    assert _selects(url_text(text), _url_encoded(data.draw(caseless_spellings(text)), encode))


@settings(max_examples=200, deadline=None)
@given(text=TEXT, data=st.data())
def test_literal_selects_every_caseless_spelling(text: str, data: st.DataObject) -> None:
    assert _selects(literal(text), data.draw(caseless_spellings(text)).encode())


def test_letters_without_a_fold_stay_plain() -> None:
    """Only i, k and s get alternatives: the other patterns are what they were."""
    assert literal("/owa/") == "/owa/" and url_text("w.") == "(?:w|%77|%57)(?:\\.|%2e)"
    assert literal("Mik") == "M(?:i|\\xc4\\xb0)(?:k|\\xe2\\x84\\xaa)"
