"""Building blocks for checks' triage prefilters (``Check.prefilter``): raw-line regexes that stay
true however a client spelled the text a check matches after decoding.

A check that matches a decoded URL (``uri_decoded``) must prefilter on every raw spelling of it:
``%2e`` for ``.``, ``%6A`` for ``j``, ``+`` or ``%20`` for a space. ``url_text`` writes that regex.
"""

from __future__ import annotations

import re

_SPACE = r"(?: |\+|%20)"


def _char(c: str) -> str:
    if c == " ":
        return _SPACE
    code = ord(c)
    escaped = re.escape(c)
    if code > 0x7F:  # non-ASCII: its UTF-8 bytes, each raw or %-encoded
        return "".join(f"(?:\\x{b:02x}|%{b:02x})" for b in c.encode())
    return f"(?:{escaped}|%{code:02x})"


def url_text(text: str) -> str:
    """A regex matching ``text`` (case-insensitive) in a raw URL, each character written as is or
    %-encoded (and a space as ``+``): the raw lines whose decoded URL holds ``text``."""
    return "".join(_char(c) for c in text)


def literal(text: str) -> str:
    """``text`` as a regex matching itself."""
    return re.escape(text)


def either_order(first: str, second: str) -> str:
    """Both regexes on one line, in either order (fields may be logged in any order)."""
    return f"(?:{first}).*(?:{second})|(?:{second}).*(?:{first})"
