"""Names an attacker chose: made printable, storable and relative before anything else sees them.

Archive member names and file names are attacker-controlled. Nothing is ever extracted to disk, so
a zip-slip name cannot write anywhere; the danger is downstream: reports that render a right-to-left
override, Parquet rejecting lone surrogates, or a path like ``../../x`` shown as if it were inside
the evidence. Every source passes names through here and warns when a name had to change.
"""

from __future__ import annotations

import re
import unicodedata

_DRIVE = re.compile(r"^([A-Za-z])(?::|%3[Aa])?$")
# the only unsafe characters of ASCII text are its C0 controls and DEL (category Cc): one C search
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ASCII_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab, \n, \r kept
# what ``visible`` must look at one by one: ASCII controls but tab and line ends, and non-ASCII
# characters (report text from event logs is mostly ASCII with a few of them: no loop per character)
_MAYBE_UNSAFE_BUT_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\U0010ffff]")


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _unsafe_char(ch: str) -> bool:
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:  # lone UTF-16 surrogate: invalid UTF-16 or undecodable UTF-8
        return True
    return unicodedata.category(ch) in ("Cc", "Cf") and ch != "\u200d"


def printable(name: str) -> tuple[str, bool]:
    """Escape control, format (bidi overrides) and surrogate characters as ``\\xNN``/``\\uNNNN``."""
    if name.isascii() and not _ASCII_CONTROL.search(name):  # nearly every name: C calls, no loop per character
        return name, False
    if all(not _unsafe_char(ch) for ch in name):
        return name, False
    return "".join(_escape_char(ch) if _unsafe_char(ch) else ch for ch in name), True


# what ``_escape_char`` writes: two hex digits, or four (five for a character past U+FFFF)
_ESCAPE = re.compile(r"\\x([0-9a-f]{2})|\\u([0-9a-f]{4})([0-9a-f]?)")


class _NotText(Exception):
    """An escape of a byte or character no Unicode text holds."""


def _unescape(match: re.Match[str]) -> str:
    """One escape as the character ``printable`` wrote it for; what it cannot have written, as is.
    Four or five digits: whichever gives a character it escapes (never both: no such character past
    U+FFFF starts with the digits of one in the BMP)."""
    two, four, fifth = match.groups()
    if two is not None:
        code = int(two, 16)
        if code >= 0x80:  # an undecodable byte and a C1 control print alike
            raise _NotText
        return chr(code) if _unsafe_char(chr(code)) else match.group()
    for digits, rest in ((four + fifth, ""), (four, fifth)):
        code = int(digits, 16)
        if code >= 0x100 and _unsafe_char(chr(code)):
            if 0xD800 <= code <= 0xDFFF:
                raise _NotText
            return chr(code) + rest
    return match.group()


def real_name(shown: str) -> str | None:
    """The name ``printable`` showed as ``shown`` (the store keeps only that form: Parquet holds no
    lone surrogate), or None where no Unicode text is that name: an escaped byte from ``\\x80``
    (undecodable, or a C1 control: they print alike) or a lone surrogate. A backslash is read as an
    escape: a Windows name never holds one."""
    if "\\" not in shown:
        return shown
    try:
        return _ESCAPE.sub(_unescape, shown)
    except _NotText:
        return None


def visible(text: str) -> str:
    """Text for a report: control, format (bidi override) and surrogate characters as ``\\xNN`` /
    ``\\uNNNN``, so a log line cannot reorder or hide what a reader sees; tab and line ends kept."""
    if text.isascii() and not _ASCII_CONTROL_BUT_LINES.search(text):  # multi-line text too, in C
        return text
    return _MAYBE_UNSAFE_BUT_LINES.sub(_visible_char, text)  # Python only for the characters that may be


def _visible_char(match: re.Match[str]) -> str:
    ch = match.group()
    return _escape_char(ch) if _unsafe_char(ch) else ch


def drive_component(part: str) -> str | None:
    """``C``, ``C:`` or ``C%3A`` -> ``C`` (the drive folder layout triage tools use)."""
    m = _DRIVE.match(part)
    return m.group(1).upper() if m else None


def safe_relative(name: str) -> tuple[str, str | None]:
    """A member name as a clean relative '/' path, plus why it was changed (zip-slip and friends).

    Backslashes count as separators; absolute paths, drive letters (``C:``), UNC prefixes and
    ``..`` components are removed so the name can never point outside the evidence.
    """
    reasons: list[str] = []
    text = name.replace("\\", "/")
    if text.startswith("//"):
        reasons.append("UNC path")
    elif text.startswith("/"):
        reasons.append("absolute path")
    parts: list[str] = []
    for i, part in enumerate(text.split("/")):
        if part in ("", "."):
            continue
        if part == "..":
            if "parent-folder (..) component" not in reasons:
                reasons.append("parent-folder (..) component")
            continue
        if i == 0 and len(part) == 2 and part[1] == ":" and part[0].isalpha():
            reasons.append("drive letter")
            parts.append(part[0].upper())
            continue
        parts.append(part)
    clean, escaped = printable("/".join(parts) or "_")
    if escaped:
        reasons.append("control or undecodable characters")
    return clean, (", ".join(reasons) if reasons else None)
